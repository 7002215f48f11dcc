"""Ledger rows the metering tests start from: a tenant, and top-ups as the API writes them."""

from __future__ import annotations

import uuid

import asyncpg

from metering.credit_store import CreditStore
from metering.ratecard import MICRO


async def insert_tenant(pool: asyncpg.Pool) -> str:
    tenant = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, 'T', $2)",
                       tenant, tenant.bytes)
    return str(tenant)


async def ledger_topup(pool: asyncpg.Pool, store: CreditStore, tenant: str, credits: int) -> None:
    """A committed top-up, then applied to the live balance (the API's order)."""
    topup_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO topups (id, tenant_id, idempotency_key, request_hash, credits,
           micro_credits) VALUES ($1, $2::uuid, $3, '', $4, $5)""",
        topup_id, tenant, str(topup_id), credits, credits * MICRO)
    await store.apply_topup(tenant, str(topup_id), credits * MICRO)

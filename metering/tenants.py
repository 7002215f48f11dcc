"""Tenants, their API keys and phone numbers, in the ledger database.

An API key is shown once, at creation; only its SHA-256 is stored. Keys are long random
tokens, so a fast hash is the right tool (no password-style stretching needed), and a
lookup is one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

API_KEY_PREFIX = "vgw_"


def hash_api_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewTenant:
    id: uuid.UUID
    api_key: str


@dataclass(frozen=True)
class PhoneNumber:
    phone_number: str
    tenant_id: uuid.UUID
    kind: str
    whatsapp_phone_number_id: str | None
    operator_number: str | None


class DuplicateNumber(Exception):
    """The phone number (or its WhatsApp id) is already held by a tenant."""


async def create_tenant(
    pool: asyncpg.Pool, name: str, rate_card: dict[str, Any] | None = None
) -> NewTenant:
    tenant_id = uuid.uuid4()
    api_key = new_api_key()
    await pool.execute(
        "INSERT INTO tenants (id, name, api_key_hash, rate_card) VALUES ($1, $2, $3, $4::jsonb)",
        tenant_id,
        name,
        hash_api_key(api_key),
        None if rate_card is None else orjson.dumps(rate_card).decode(),
    )
    return NewTenant(tenant_id, api_key)


async def tenant_for_api_key(pool: asyncpg.Pool, api_key: str) -> uuid.UUID | None:
    if not api_key.startswith(API_KEY_PREFIX) or len(api_key) > 200:
        return None
    found: uuid.UUID | None = await pool.fetchval(
        "SELECT id FROM tenants WHERE api_key_hash = $1", hash_api_key(api_key)
    )
    return found


async def get_tenant(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT id, name, rate_card, created_at FROM tenants WHERE id = $1", tenant_id
    )


async def add_number(pool: asyncpg.Pool, number: PhoneNumber) -> None:
    try:
        await pool.execute(
            """INSERT INTO phone_numbers
                   (phone_number, tenant_id, kind, whatsapp_phone_number_id, operator_number)
               VALUES ($1, $2, $3, $4, $5)""",
            number.phone_number,
            number.tenant_id,
            number.kind,
            number.whatsapp_phone_number_id,
            number.operator_number,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateNumber(number.phone_number) from exc


async def numbers_of(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> list[PhoneNumber]:
    rows = await pool.fetch(
        """SELECT phone_number, tenant_id, kind, whatsapp_phone_number_id, operator_number
           FROM phone_numbers WHERE tenant_id = $1 AND released_at IS NULL
           ORDER BY held_from""",
        tenant_id,
    )
    return [PhoneNumber(**dict(row)) for row in rows]


async def tenant_for_number(pool: asyncpg.Pool, phone_number: str) -> PhoneNumber | None:
    row = await pool.fetchrow(
        """SELECT phone_number, tenant_id, kind, whatsapp_phone_number_id, operator_number
           FROM phone_numbers WHERE phone_number = $1 AND released_at IS NULL""",
        phone_number,
    )
    return None if row is None else PhoneNumber(**dict(row))


async def set_billing_email(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                            billing_email: str | None) -> None:
    """Where the tenant's billing mail (tariff offers) goes; None removes it."""
    await pool.execute("UPDATE tenants SET billing_email = $2 WHERE id = $1", tenant_id,
                       billing_email)

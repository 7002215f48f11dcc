"""`voicegw invoices close --period`: a real process finalizes an ended period once, refuses
a running one, and a second run takes no number again."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import asyncpg
import redis.asyncio as aioredis

from metering.billing.subscriptions import subscribe
from metering.credit_store import CreditStore
from tests.metering.billing_helpers import add_plan, at
from tests.metering.ledger import insert_tenant


async def _close(period: str, redis_url: str, database_url: str,
                 key_prefix: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    env.update(VOICEGW_REDIS_URL=redis_url, VOICEGW_DATABASE_URL=database_url,
               VOICEGW_REDIS_PREFIX=key_prefix, VOICEGW_INVOICE_ISSUER="ACME")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "invoices", "close", "--period", period,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_invoices_close_finalizes_an_ended_period_once(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, redis_url: str,
        database_url: str, key_prefix: str) -> None:
    await add_plan(pg_pool, at("2025-01-01 00:00"))
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await subscribe(pg_pool, CreditStore(redis_client, key_prefix), tenant_id=tenant,
                    plan_id="growth", now=at("2025-01-10 00:00"))
    code, out, _ = await _close("2025-01", redis_url, database_url, key_prefix)
    assert code == 0 and "finalized ACME-" in out and "1 invoices finalized" in out, out
    number = await pg_pool.fetchval("SELECT number FROM invoices WHERE tenant_id = $1 "
                                    "AND period = '2025-01-01'", tenant)
    assert number is not None and number.startswith("ACME-") and number in out
    code, out, _ = await _close("2025-01", redis_url, database_url, key_prefix)
    assert code == 0 and "0 invoices finalized" in out
    assert await pg_pool.fetchval("SELECT count(*) FROM invoices WHERE number IS NOT NULL") == 1


async def test_invoices_close_refuses_a_running_period(
        redis_url: str, database_url: str, key_prefix: str) -> None:
    code, _, err = await _close("2999-01", redis_url, database_url, key_prefix)
    assert code == 2 and "has not ended yet" in err
    code, _, err = await _close("2025-13", redis_url, database_url, key_prefix)
    assert code == 2 and "period" in err

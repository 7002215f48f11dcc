"""Conversations in PostgreSQL: settings bounds, masking, the idle window, settling once
under concurrency, and the retention purge."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from metering.conversations import store
from metering.conversations.masking import mask_text
from metering.conversations.settings import InvalidSetting, settings_of, update_settings
from tests.metering.ledger import insert_tenant

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("text", "masked"), [
    ("call me on +49 151 1234 5678 please", "call me on +** *** **** **78 please"),
    ("(555) 123-4567", "(***) ***-**67"),
    ("mail jane.doe@example.com now", "mail j***@example.com now"),
    ("3 pizzas at 10:30 on 2026-12-01, order 12345",
     "3 pizzas at 10:30 on 2026-12-01, order 12345"),
])
def test_numbers_and_emails_are_masked_and_dates_are_not(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(("changes", "setting"), [
    ({"timezone": "Mars/Olympus"}, "timezone"), ({"timezone": "../etc/passwd"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"conversation_idle_minutes": 0}, "conversation_idle_minutes"),
    ({"conversation_idle_minutes": True}, "conversation_idle_minutes"),
    ({"transcript_retention_days": 3651}, "transcript_retention_days"),
    ({"service_level_s": "20"}, "service_level_s"), ({"csat_enabled": 1}, "csat_enabled"),
    ({"report_emails": ["not an address"]}, "report_emails"),
    ({"report_emails": [f"r{i}@example.com" for i in range(21)]}, "report_emails"),
    ({"colour": "blue"}, "colour"),
])
async def test_bad_settings_are_refused_naming_the_setting_and_change_nothing(
        pg_pool: asyncpg.Pool, changes: dict[str, object], setting: str) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    before = await settings_of(pg_pool, tenant)
    with pytest.raises(InvalidSetting) as refused:
        await update_settings(pg_pool, tenant, {"mask_transcripts": True, **changes})
    assert refused.value.setting == setting
    assert await settings_of(pg_pool, tenant) == before


async def test_settings_change_only_what_is_given(pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    changed = await update_settings(pg_pool, tenant, {"timezone": "Europe/Istanbul",
                                                      "report_emails": ["a@example.com"]})
    assert changed is not None and changed.timezone == "Europe/Istanbul"
    assert changed.conversation_idle_minutes == 30 and changed.report_emails == ("a@example.com",)
    assert await settings_of(pg_pool, tenant) == changed
    assert await update_settings(pg_pool, uuid.uuid4(), {"csat_enabled": True}) is None


def _customer(tenant: uuid.UUID) -> store.TextCustomer:
    return store.TextCustomer(tenant, "whatsapp", "h" * 24, "+4915***5678")


async def _message(pool: asyncpg.Pool, tenant: uuid.UUID, at: dt.datetime, key: str
                   ) -> uuid.UUID:
    return await store.customer_turn(
        pool, _customer(tenant), at=at, idle_minutes=30, session_id=f"wa-{key}",
        item=store.turn("customer", "hello", at, at, key=f"in:{key}"), micro_credits=10,
        mask=False)


async def test_the_idle_window_groups_messages_and_a_retry_adds_nothing(
        pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    first = await _message(pg_pool, tenant, T0, "m1")
    assert await _message(pg_pool, tenant, T0 + dt.timedelta(minutes=30), "m2") == first
    assert await _message(pg_pool, tenant, T0 + dt.timedelta(minutes=30), "m2") == first
    later = await _message(pg_pool, tenant, T0 + dt.timedelta(minutes=61), "m3")
    assert later != first
    row = await pg_pool.fetchrow("SELECT jsonb_array_length(transcript) AS turns, "
                                 "micro_credits, session_ids FROM conversations WHERE id = $1",
                                 first)
    assert (row["turns"], row["micro_credits"], row["session_ids"]) == (2, 20, ["wa-m1", "wa-m2"])


async def test_idle_conversations_are_settled_once_by_concurrent_jobs(
        pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await _message(pg_pool, tenant, T0, "a1")
    now = T0 + dt.timedelta(minutes=31)
    results = await asyncio.gather(*(store.close_text(pg_pool, now=now) for _ in range(8)))
    settled = [c for batch in results for c in batch]
    assert len(settled) == 1 and settled[0].ended_at == T0
    assert settled[0].disposition == "completed" and settled[0].micro_credits == 10
    assert await store.close_text(pg_pool, now=now + dt.timedelta(days=1)) == []


async def test_transcripts_past_their_retention_are_deleted_and_the_figures_stay(
        pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await update_settings(pg_pool, tenant, {"transcript_retention_days": 7})
    old = await _message(pg_pool, tenant, T0, "o1")
    await store.close_text(pg_pool, now=T0 + dt.timedelta(hours=1))
    recent = await _message(pg_pool, tenant, T0 + dt.timedelta(days=6), "r1")
    assert await store.purge_transcripts(pg_pool, now=T0 + dt.timedelta(days=7, hours=1)) == 1
    rows = {r["id"]: r for r in await pg_pool.fetch(
        "SELECT id, transcript IS NULL AS gone, tool_calls IS NULL AS tools_gone, "
        "transcript_purged_at, micro_credits FROM conversations")}
    assert rows[old]["gone"] and rows[old]["tools_gone"] and rows[old]["micro_credits"] == 10
    assert rows[old]["transcript_purged_at"] == T0 + dt.timedelta(days=7, hours=1)
    assert not rows[recent]["gone"]
    assert await store.purge_transcripts(pg_pool, now=T0 + dt.timedelta(days=7, hours=1)) == 0


async def test_a_call_whose_gateway_was_lost_is_settled_from_its_swept_session(
        pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await store.start_call(pg_pool, tenant_id=tenant, call_sid="CA1", session_id="call_CA1",
                           customer_hash="h", customer_masked="+1555***0000", started_at=T0)
    now = T0 + dt.timedelta(minutes=10)
    assert await store.settle_lost_calls(pg_pool, now=now) == []  # not in the ledger yet
    await pg_pool.execute(
        """INSERT INTO sessions (session_id, tenant_id, channel, status, started_at, ended_at,
               micro_credits, details)
           VALUES ('call_CA1', $1, 'phone', 'swept', $2, $3, 1234,
                   '{"disposition": "gateway_lost"}')""",
        tenant, T0, T0 + dt.timedelta(minutes=2))
    assert await store.settle_lost_calls(pg_pool, now=T0 + dt.timedelta(minutes=6)) == []
    (lost,) = await store.settle_lost_calls(pg_pool, now=now)
    assert lost.disposition == "gateway_lost" and lost.micro_credits == 1234
    assert lost.ended_at == T0 + dt.timedelta(minutes=2)
    assert await store.settle_lost_calls(pg_pool, now=now) == []

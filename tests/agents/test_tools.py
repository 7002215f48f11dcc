"""The agent's tools write each outcome once, whatever the model sends or repeats."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from agents.tools import ToolContext, run_tool, tool_schemas
from metering.agent_configs import TOOL_NAMES
from metering.outcomes import Origin
from tests.metering.ledger import insert_tenant


async def _ctx(pool: asyncpg.Pool, session: str = "call_CA1") -> ToolContext:
    tenant = uuid.UUID(await insert_tenant(pool))
    return ToolContext(pool, Origin(tenant, session, "phone", "+15550001111"), "+15550002222")


async def test_booking_writes_one_appointment_and_one_success_even_when_replayed(
        pg_pool: asyncpg.Pool) -> None:
    ctx = await _ctx(pg_pool)
    args = '{"name": "Ada", "when": "tomorrow at 3pm", "service": "cleaning"}'
    results = await asyncio.gather(*(run_tool(ctx, "book_appointment", "call_1", args)
                                     for _ in range(5)))
    assert all(r.ok for r in results)
    assert sum(1 for r in results if r.outcome and r.outcome.created) == 1
    assert len({r.outcome.record_id for r in results if r.outcome}) == 1
    rows = await pg_pool.fetch("SELECT name, requested_for, service, customer FROM appointments")
    assert [tuple(r) for r in rows] == [("Ada", "tomorrow at 3pm", "cleaning", "+15550001111")]
    assert await pg_pool.fetchval("SELECT count(*) FROM success_events") == 1
    other = await run_tool(ctx, "book_appointment", "call_2", args)  # a second booking
    assert other.outcome is not None and other.outcome.created
    assert await pg_pool.fetchval("SELECT count(*) FROM success_events") == 2


async def test_ticket_and_order_are_successes_of_their_kind(pg_pool: asyncpg.Pool) -> None:
    ctx = await _ctx(pg_pool)
    ticket = await run_tool(ctx, "create_support_ticket", "c1",
                            {"summary": "router broken", "priority": "high"})
    order = await run_tool(ctx, "place_order", "c2",
                           {"items": [{"name": "pizza", "quantity": 2}]})
    assert ticket.outcome and ticket.outcome.kind == "ticket_created"
    assert order.outcome and order.outcome.kind == "order_placed"
    kinds = await pg_pool.fetch("SELECT kind FROM success_events ORDER BY kind")
    assert [r["kind"] for r in kinds] == ["order_placed", "ticket_created"]
    items = await pg_pool.fetchval("SELECT items::text FROM orders")
    assert '"quantity": 2' in items


async def test_bad_arguments_answer_the_model_and_write_nothing(pg_pool: asyncpg.Pool) -> None:
    ctx = await _ctx(pg_pool)
    cases: list[tuple[str, Any]] = [
        ("book_appointment", "{not json"),
        ("book_appointment", "[1, 2]"),
        ("book_appointment", {"name": "Ada"}),
        ("book_appointment", {"name": 3, "when": "x", "service": "y"}),
        ("place_order", {"items": []}),
        ("place_order", {"items": [{"name": "x", "quantity": 0}]}),
        ("create_support_ticket", {"summary": "x", "priority": "urgent"}),
        ("launch_rockets", {}),
    ]
    for name, args in cases:
        result = await run_tool(ctx, name, "c", args)
        assert not result.ok and result.outcome is None, (name, args)
        assert "error" in result.content
    assert await pg_pool.fetchval("SELECT count(*) FROM success_events") == 0


async def test_transfer_records_a_handoff_once_and_end_call_ends(pg_pool: asyncpg.Pool) -> None:
    ctx = await _ctx(pg_pool)
    first = await run_tool(ctx, "transfer_to_human", "t1", {"reason": "billing question"})
    again = await run_tool(ctx, "transfer_to_human", "t1", {"reason": "billing question"})
    assert (first.action, first.transfer_to) == ("transfer", "+15550002222")
    assert again.action == "transfer"
    assert await pg_pool.fetchval("SELECT count(*) FROM handoffs") == 1
    assert (await run_tool(ctx, "end_call", "e1", None)).action == "end"
    assert await pg_pool.fetchval("SELECT count(*) FROM success_events") == 0


def test_every_configurable_tool_has_a_schema() -> None:
    names = [s["function"]["name"] for s in tool_schemas(list(TOOL_NAMES))]
    assert names == list(TOOL_NAMES)

"""A tool whose record the store cannot take: tried again briefly, then the model is told
nothing was saved; never raised. PostgreSQL is taken away for this test's database only."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from agents.chat_client import ChatClient
from agents.text_agent import TextAgent, TextTurn
from agents.tools import STORE_ATTEMPTS, STORE_BUDGET_S, ToolContext, ToolFailure, run_tool
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from metering.agent_configs import AgentConfig
from metering.outcomes import Origin
from tests.metering.ledger import insert_tenant
from tests.pg_outage import DatabaseOutage, pool_on_a_closed_port
from tests.servers import TestServers

OPERATOR = "+15550002222"
BOOKING = {"name": "Ada", "when": "tomorrow at 3pm", "service": "cleaning"}
RECORD_TOOLS: list[tuple[str, dict[str, Any], str]] = [
    ("book_appointment", BOOKING, "the appointment could not be booked"),
    ("create_support_ticket", {"summary": "router broken"},
     "the support ticket could not be created"),
    ("place_order", {"items": [{"name": "pizza", "quantity": 2}]},
     "the order could not be placed"),
    ("transfer_to_human", {"reason": "billing"}, "no person could be reached"),
]


@pytest.fixture
async def outage(servers: TestServers, database_url: str,
                 pg_pool: asyncpg.Pool) -> AsyncIterator[DatabaseOutage]:
    taken = DatabaseOutage(servers.postgres_url, database_url)
    yield taken
    await taken.close()  # restored before the pool closes


class _Retries(logging.Handler):
    """Sets `retried` when a tool says it is trying its record again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retried = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "trying again" in record.getMessage():
            self.retried.set()


@pytest.fixture
def retries() -> Iterator[_Retries]:
    handler = _Retries()
    logger = logging.getLogger("voicegw.tools")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def _origin(pool: asyncpg.Pool, channel: str = "whatsapp") -> Origin:
    tenant = uuid.UUID(await insert_tenant(pool))
    return Origin(tenant, f"{channel}_{uuid.uuid4().hex[:8]}", channel, "+15550001111")


async def _count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608


async def test_with_postgresql_down_each_record_tool_says_nothing_was_saved(
        pg_pool: asyncpg.Pool, outage: DatabaseOutage) -> None:
    chat = ToolContext(pg_pool, await _origin(pg_pool))
    phone = ToolContext(pg_pool, await _origin(pg_pool, "phone"), OPERATOR)
    await outage.start()
    for name, args, error in RECORD_TOOLS:
        started = time.monotonic()
        result = await run_tool(chat, name, f"c-{name}", args)
        assert time.monotonic() - started < STORE_BUDGET_S + 1.0  # bounded, whatever fails
        assert not result.ok and result.action == "none" and result.outcome is None, name
        assert result.content["error"] == error and "apologise" in result.content["hint"]
        failure = result.failure
        assert failure is not None and (failure.tool, failure.call_id, failure.channel,
                                        failure.attempts) == (name, f"c-{name}", "whatsapp",
                                                              STORE_ATTEMPTS)
        # The record names the error's kind, never its message (it names the database).
        assert failure.error.isidentifier()
        assert outage.database not in orjson.dumps(failure.to_json()).decode()
    # A phone transfer reaches a person without its record: it goes ahead, failure noted.
    transfer = await run_tool(phone, "transfer_to_human", "t1", {})
    assert (transfer.action, transfer.transfer_to) == ("transfer", OPERATOR)
    assert transfer.failure is not None and transfer.failure.tool == "transfer_to_human"
    # A bad argument is the model's to fix, not a store failure: no retries, no record.
    bad = await run_tool(chat, "book_appointment", "c9", {"name": "Ada"})
    assert bad.failure is None and bad.content["hint"] == "ask the customer, then try again"
    await outage.end()
    for table in ("success_events", "appointments", "support_tickets", "orders", "handoffs"):
        assert await _count(pg_pool, table) == 0, table


async def test_a_refused_connection_fails_the_tool_after_the_retries() -> None:
    pool = await pool_on_a_closed_port()
    try:
        ctx = ToolContext(pool, Origin(uuid.uuid4(), "call_CA1", "phone", "+15550001111"))
        result = await run_tool(ctx, "book_appointment", "call_1", BOOKING)
    finally:
        await pool.close()
    assert result.failure == ToolFailure("book_appointment", "call_1", "phone",
                                         "ConnectionRefusedError", STORE_ATTEMPTS)
    assert result.content["error"] == "the appointment could not be booked"


async def test_an_outage_that_ends_during_the_retries_records_the_booking_once(
        pg_pool: asyncpg.Pool, outage: DatabaseOutage, retries: _Retries) -> None:
    ctx = ToolContext(pg_pool, await _origin(pg_pool, "phone"), OPERATOR)
    await outage.start()
    # The same tool call three times at once (a replay racing the original).
    calls = [asyncio.create_task(run_tool(ctx, "book_appointment", "call_1", BOOKING))
             for _ in range(3)]
    await asyncio.wait_for(retries.retried.wait(), 10)  # a first attempt failed
    await outage.end()
    results = await asyncio.gather(*calls)
    assert all(r.ok and r.failure is None for r in results)
    assert len({r.outcome.record_id for r in results if r.outcome}) == 1
    assert sum(1 for r in results if r.outcome and r.outcome.created) == 1
    assert results[0].content["status"] == "confirmed"
    assert await _count(pg_pool, "success_events") == 1
    assert await _count(pg_pool, "appointments") == 1


@pytest.fixture
async def llm() -> AsyncIterator[RunningEmulators]:
    running = await start_emulators(config=EmulatorConfig(ChatState(ChatTiming(0, 0))))
    yield running
    await running.stop()


async def test_the_text_agent_tells_the_model_and_lists_the_failure(
        llm: RunningEmulators) -> None:
    pool = await pool_on_a_closed_port()
    seen: list[ToolFailure] = []

    async def report(usage: dict[str, int]) -> bool:
        return False

    try:
        async with aiohttp.ClientSession() as http:
            agent = TextAgent(ChatClient(http, llm.base_urls()["openai"], "k"), "gpt-test",
                              pool, on_tool_failure=seen.append)
            turn = TextTurn(uuid.uuid4(), "whatsapp", "4915112345678", "wa-x1",
                            "please book an appointment for friday at 10am")
            reply = await agent.reply(turn, AgentConfig(), [], report)
    finally:
        await pool.close()
    expected = ToolFailure("book_appointment", "t0", "whatsapp", "ConnectionRefusedError",
                           STORE_ATTEMPTS)
    assert reply.tool_failures == seen == [expected] and reply.outcomes == []
    # The model's next request carried the real result, and it did not confirm.
    tool_message = llm.config.chat.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert orjson.loads(tool_message["content"])["error"] == "the appointment could not be booked"
    assert "did not go through" in reply.text and "confirmed" not in reply.text

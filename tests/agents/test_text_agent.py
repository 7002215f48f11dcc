"""The text agent against the real LLM emulator and real PostgreSQL; its history in real
Redis. Usage the provider does not report is counted by the agent itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from agents.chat_client import ChatClient
from agents.history import ConversationHistory
from agents.text_agent import HANDOFF_NOTICE, AgentUnavailable, TextAgent, TextTurn
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from metering.agent_configs import AgentConfig
from tests.metering.ledger import insert_tenant


@pytest.fixture
async def llm() -> AsyncIterator[RunningEmulators]:
    running = await start_emulators(config=EmulatorConfig(ChatState(ChatTiming(0, 0))))
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _agent(base_url: str, pool: asyncpg.Pool, http: aiohttp.ClientSession,
           **options: Any) -> TextAgent:
    return TextAgent(ChatClient(http, base_url, "k"), "gpt-test", pool, **options)


class Reports:
    def __init__(self, exhausted_after: int | None = None) -> None:
        self.seen: list[dict[str, int]] = []
        self.exhausted_after = exhausted_after

    async def __call__(self, usage: dict[str, int]) -> bool:
        self.seen.append(usage)
        return self.exhausted_after is not None and len(self.seen) >= self.exhausted_after


async def _turn(pool: asyncpg.Pool, text: str, channel: str = "whatsapp") -> TextTurn:
    tenant = uuid.UUID(await insert_tenant(pool))
    return TextTurn(tenant, channel, "4915112345678", f"wa-{uuid.uuid4().hex}", text, "Ada")


async def test_a_plain_reply_reports_the_providers_usage(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    agent = _agent(llm.base_urls()["openai"], pg_pool, http)
    reports = Reports()
    reply = await agent.reply(await _turn(pg_pool, "what time do you open?"), AgentConfig(),
                              [], reports)
    assert reply.text.startswith("This is the voicegw emulator. You said: what time")
    assert reply.usage["chat_input_tokens"] > 0 and reply.usage["chat_output_tokens"] > 0
    assert reports.seen == [reply.usage] and not reply.counted_by_us
    assert [m["role"] for m in reply.messages] == ["user", "assistant"]
    request = llm.config.chat.requests[0]
    assert "WhatsApp" in request["messages"][0]["content"]
    assert {t["function"]["name"] for t in request["tools"]} >= {"book_appointment"}


async def test_a_booking_runs_the_tool_and_confirms(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    agent = _agent(llm.base_urls()["openai"], pg_pool, http)
    turn = await _turn(pg_pool, "please book an appointment for friday at 10am")
    reply = await agent.reply(turn, AgentConfig(), [], Reports())
    (outcome,) = reply.outcomes
    assert outcome.kind == "appointment_booked" and outcome.event_id == f"{turn.session_id}:t0"
    assert reply.usage["tool_calls"] == 1 and "confirmed" in reply.text
    assert [m["role"] for m in reply.messages] == ["user", "assistant", "tool", "assistant"]
    again = await agent.reply(turn, AgentConfig(), [], Reports())  # the same exchange again
    assert not again.outcomes[0].created  # booked once
    assert await pg_pool.fetchval("SELECT count(*) FROM appointments") == 1


async def test_a_transfer_ends_the_turn_with_the_notice(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    agent = _agent(llm.base_urls()["openai"], pg_pool, http)
    reply = await agent.reply(await _turn(pg_pool, "let me speak to a human"), AgentConfig(),
                              [], Reports())
    assert reply.action == "transfer" and reply.text == HANDOFF_NOTICE
    assert len(llm.config.chat.requests) == 1  # no second completion after the handoff
    assert await pg_pool.fetchval("SELECT channel FROM handoffs") == "whatsapp"


async def test_used_up_credit_stops_before_the_tools(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    agent = _agent(llm.base_urls()["openai"], pg_pool, http)
    reply = await agent.reply(await _turn(pg_pool, "book an appointment tomorrow"),
                              AgentConfig(), [], Reports(exhausted_after=1))
    assert reply.exhausted and reply.text == "" and reply.outcomes == []
    assert await pg_pool.fetchval("SELECT count(*) FROM appointments") == 0


async def test_tools_the_tenant_did_not_enable_are_not_offered(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    agent = _agent(llm.base_urls()["openai"], pg_pool, http)
    config = AgentConfig(tools=("create_support_ticket",))
    reply = await agent.reply(await _turn(pg_pool, "book an appointment", "sms"), config, [],
                              Reports())
    assert reply.outcomes == [] and reply.usage["tool_calls"] == 0
    request = llm.config.chat.requests[0]
    assert [t["function"]["name"] for t in request["tools"]] == ["create_support_ticket"]
    assert "SMS" in request["messages"][0]["content"]


async def test_provider_failures_are_retried_once_then_raise(
        llm: RunningEmulators, pg_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    llm.config.chat.fail_next.append(503)  # one failure is retried
    reply = await _agent(llm.base_urls()["openai"], pg_pool, http).reply(
        await _turn(pg_pool, "hi"), AgentConfig(), [], Reports())
    assert reply.text
    llm.config.chat.fail_next.extend([500, 500])
    with pytest.raises(AgentUnavailable):
        await _agent(llm.base_urls()["openai"], pg_pool, http).reply(
            await _turn(pg_pool, "hi"), AgentConfig(), [], Reports())


async def _no_usage_server() -> web.AppRunner:
    """An OpenAI-compatible server that reports no usage, as some local servers do."""
    async def completions(request: web.Request) -> web.Response:
        return web.json_response({
            "id": "c1", "object": "chat.completion", "created": 0, "model": "local",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "We open at nine."}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_usage_the_provider_does_not_report_is_counted(
        pg_pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    runner = await _no_usage_server()
    try:
        port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
        agent = _agent(f"http://127.0.0.1:{port}/v1", pg_pool, http)
        reply = await agent.reply(await _turn(pg_pool, "when do you open?"), AgentConfig(),
                                  [], Reports())
    finally:
        await runner.cleanup()
    assert reply.text == "We open at nine." and reply.counted_by_us
    assert reply.usage["chat_output_tokens"] >= 4  # "We open at nine."
    assert reply.usage["chat_input_tokens"] > 100  # the system prompt and the tools


async def test_history_keeps_the_newest_exchanges_within_the_budget(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    history = ConversationHistory(redis_client, key_prefix, max_tokens=60, ttl_s=300)
    for n in range(10):
        await history.append("t1", "whatsapp", "c1", [
            {"role": "user", "content": f"question {n} " + "word " * 10},
            {"role": "assistant", "content": f"answer {n}"}])
    kept = await history.load("t1", "whatsapp", "c1")
    assert kept[-1]["content"] == "answer 9" and kept[0]["role"] == "user"
    assert 2 <= len(kept) < 20 and len(kept) % 2 == 0  # whole exchanges only
    ttl = await redis_client.ttl(history.key("t1", "whatsapp", "c1"))
    assert 0 < ttl <= 300
    assert await history.load("t1", "sms", "c1") == []  # channels are separate
    await history.clear("t1", "whatsapp", "c1")
    assert await history.load("t1", "whatsapp", "c1") == []


async def test_history_appends_from_two_writers_lose_nothing(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    writers = [ConversationHistory(redis_client, key_prefix) for _ in range(2)]
    await asyncio.gather(*(writers[n % 2].append("t1", "sms", "c1", [
        {"role": "user", "content": f"m{n}"}]) for n in range(20)))
    said = {m["content"] for m in await writers[0].load("t1", "sms", "c1")}
    assert said == {f"m{n}" for n in range(20)}

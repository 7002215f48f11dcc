"""A phone call whose booking cannot be saved: PostgreSQL goes away (for this test's
database only) once the call is live; the agent is told, the caller is not lied to, the
call record lists the failure and /metrics counts it."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from gateway.state import SESSIONS
from load.caller import CallScript
from tests.gateway.voice.conftest import Gateway
from tests.gateway.voice.test_calls import call_record, place_call
from tests.pg_outage import DatabaseOutage
from tests.prom import sample
from tests.servers import TestServers


async def test_a_booking_that_cannot_be_saved_is_told_recorded_and_counted(
        gateway: Gateway, servers: TestServers, database_url: str) -> None:
    app = gateway.server.app
    outage = DatabaseOutage(servers.postgres_url, database_url)
    try:
        calling = asyncio.create_task(place_call(gateway, CallScript(
            ["I would like to book an appointment tomorrow at 3pm"], max_call_s=30)))
        # Once the call is live, every store read of its set-up is done: take the store
        # away before the caller (who waits for the greeting to end) asks for the booking.
        while app[SESSIONS].count("phone") == 0:
            assert not calling.done(), "the call ended before it was live"
            await asyncio.sleep(0.01)
        await outage.start()
        result, _ = await calling
    finally:
        await outage.close()
    assert result.ended_by == "caller"
    # The LLM asked for the booking, and its next request carried the real result.
    requests = gateway.emulators.config.chat.requests
    asked = [i for i, body in enumerate(requests)
             if any(c["function"]["name"] == "book_appointment"
                    for m in body["messages"] for c in m.get("tool_calls") or [])]
    tool_message = requests[asked[0]]["messages"][-1]
    assert tool_message["role"] == "tool"
    answer = orjson.loads(tool_message["content"])
    assert answer["error"] == "the appointment could not be booked"
    assert "apologise" in answer["hint"]
    record = await call_record(gateway, result.call_sid)
    assert record["outcomes"] == []
    (failure,) = record["tool_failures"]
    assert failure["tool"] == "book_appointment" and failure["attempts"] == 3
    assert failure["call_id"] == tool_message["tool_call_id"]
    async with aiohttp.ClientSession() as http:
        metrics = await (await http.get(f"{gateway.base}/metrics")).text()
    assert sample(metrics, "voicegw_tool_failures_total", channel="phone",
                  tool="book_appointment") == 1

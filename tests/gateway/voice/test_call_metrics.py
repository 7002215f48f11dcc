"""A phone call in /metrics: each answered turn in the turn-latency histogram, the credit
session's operations in the credit-control histogram, no call left active."""

from __future__ import annotations

import aiohttp

from load.caller import CallScript
from tests.gateway.voice.conftest import Gateway
from tests.gateway.voice.test_calls import place_call
from tests.prom import sample


async def test_a_call_counts_its_turn_latencies_and_credit_operations(
        gateway: Gateway) -> None:
    result, _ = await place_call(gateway, CallScript(
        ["What are your opening hours?", "And on Saturday?"], max_call_s=30))
    assert result.ended_by == "caller"
    heard = result.turn_latencies_ms
    assert len(heard) == 2
    async with aiohttp.ClientSession() as http:
        text = await (await http.get(f"{gateway.base}/metrics")).text()
    # One observation per answered turn; the gateway's clock starts when the caller's
    # speech ended and stops when the audio leaves, both inside what the caller heard.
    assert sample(text, "voicegw_call_turn_latency_seconds_count") == len(heard)
    total = sample(text, "voicegw_call_turn_latency_seconds_sum")
    assert total is not None and 0 < total <= sum(heard) / 1000 + 0.1 * len(heard)
    for op in ("reserve", "terminate"):
        assert sample(text, "voicegw_credit_control_duration_seconds_count", op=op) == 1, op
    assert sample(text, "voicegw_active_calls") == 0
    assert sample(text, "voicegw_http_requests_total", route="/twilio/stream",
                  status="101") == 1
    assert sample(text, "voicegw_http_request_duration_seconds_count",
                  route="/twilio/stream") is None  # a websocket's length is not its handling

"""Admission by live load (gateway/voice/capacity.py): a process at capacity answers
"all lines busy", and the calls it admitted keep their latency."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.embedded import free_port
from gateway.voice.capacity import CallCapacity
from gateway.voice.routes import BUSY
from load.caller import CallResult, CallScript, Endpoint, SimulatedCall
from load.emulators.server import RunningEmulators
from tests.gateway.helpers import TWILIO_AUTH_TOKEN, make_settings, start_serve
from tests.gateway.voice.conftest import ACCOUNT_SID, ADMIN, NUMBER

OFFERED = 6
APART_S = 0.8  # between two calls offered: each admission sees the calls before it live
CPU_LIMIT = 0.1  # cores: two or three calls of the child (~30-50 ms CPU per call-second)
TURN_BOUND_MS = 2000.0  # with the fast emulators a turn takes ~0.7 s; overload made 10 s


def test_a_late_event_loop_refuses_calls() -> None:
    capacity = CallCapacity(max_calls=100, cpu_limit=8.0, lag_limit_ms=25.0)
    for _ in range(5):
        capacity.sample(0.001)
    assert capacity.refusal(live=3) is None
    for _ in range(20):
        capacity.sample(0.060)
    refusal = capacity.refusal(live=3)
    assert refusal is not None and refusal[0] == "lag"


def test_cpu_with_one_more_call_over_the_limit_refuses_it() -> None:
    capacity = CallCapacity(max_calls=100, cpu_limit=0.05, lag_limit_ms=1000.0)
    capacity.sample(0.0)
    spent = time.process_time()
    while time.process_time() - spent < 0.2:  # 0.2 s of CPU within the 2 s window
        sum(range(1000))
    capacity.sample(0.0)
    refusal = capacity.refusal(live=2)
    assert refusal is not None and refusal[0] == "cpu"
    assert capacity.load(live=2).cores > 0.05


def test_with_no_call_live_only_the_calls_starting_are_judged() -> None:
    capacity = CallCapacity(max_calls=100, cpu_limit=0.07, lag_limit_ms=1.0)
    _busy(capacity, 0.2)  # a start, a sign-in: over the CPU limit, no call live
    for _ in range(20):
        capacity.sample(0.060)  # and the loop late
    assert capacity.refusal(live=0) is None
    capacity.admitted("CA1")
    assert capacity.refusal(live=0) is None  # two starting at 0.03 each: not yet 0.07
    capacity.admitted("CA2")
    refusal = capacity.refusal(live=0)  # a third would pass the limit at the estimate
    assert refusal is not None and refusal[0] == "cpu"
    capacity.started("CA1")
    refusal = capacity.refusal(live=1)  # a call live: the loop's lateness counts again
    assert refusal is not None and refusal[0] == "lag"


def _busy(capacity: CallCapacity, cpu_s: float) -> None:
    """`cpu_s` of this process's CPU inside the window, between two samples."""
    capacity.sample(0.0)
    spent = time.process_time()
    while time.process_time() - spent < cpu_s:
        sum(range(1000))
    capacity.sample(0.0)


def test_calls_measured_in_a_cheap_moment_are_projected_at_their_busy_cost() -> None:
    """Ten calls measured busy, then the same ten listening (cheap): the next call is
    judged by what the ten will cost when they answer again, not by the quiet reading."""
    now = [0.0]  # the estimate's clock, moved by hand
    capacity = CallCapacity(max_calls=100, cpu_limit=0.3, lag_limit_ms=1000.0,
                            clock=lambda: now[0])
    _busy(capacity, 0.25)  # ~0.25 s within a short window: well over 0.3 cores for ten
    busy = capacity.load(live=10).cores
    assert capacity.refusal(live=10) is not None
    capacity._samples.clear()  # the window moves on: the same calls, now listening
    capacity.sample(0.0)
    time.sleep(0.3)  # idle: nothing of this process runs
    capacity.sample(0.0)
    assert capacity.load(live=10).cores < 0.05  # the instant reading says "idle"
    refusal = capacity.refusal(live=10)
    assert refusal is not None and refusal[0] == "cpu", (busy, refusal)
    for _ in range(2000):  # a flood of redials in the same moment lowers nothing
        capacity.refusal(live=10)
    assert capacity.refusal(live=10) is not None
    for _ in range(60):  # the estimate comes down with time while calls stay cheap
        now[0] += 10.0
        capacity.refusal(live=10)
    assert capacity.refusal(live=10) is None


def test_admitted_calls_not_streaming_yet_count_until_they_start() -> None:
    capacity = CallCapacity(max_calls=2, cpu_limit=8.0, lag_limit_ms=1000.0)
    assert capacity.refusal(live=0) is None
    capacity.admitted("CA1")
    assert capacity.refusal(live=0) is None
    capacity.admitted("CA2")
    refusal = capacity.refusal(live=0)  # a burst of webhooks does not pass one reading
    assert refusal is not None and refusal[0] == "max_calls"
    capacity.started("CA1")
    capacity.started("CA2")
    assert capacity.refusal(live=1) is None  # one live, none starting: one more fits


async def _tenant(http: aiohttp.ClientSession, base: str) -> None:
    """A tenant with the number and credit for every call offered."""
    created = await (await http.post(f"{base}/admin/tenants", json={"name": "Acme Dental"},
                                     headers=ADMIN)).json()
    assigned = await http.post(f"{base}/admin/tenants/{created['id']}/numbers", headers=ADMIN,
                               json={"phone_number": NUMBER, "kind": "local"})
    assert assigned.status == 201, await assigned.text()
    topup = await http.post(f"{base}/v1/topups", json={"credits": 100_000}, headers={
        "Authorization": f"Bearer {created['api_key']}", "Idempotency-Key": "first"})
    assert topup.status == 201, await topup.text()


@pytest.fixture
async def child_base(redis_url: str, database_url: str, key_prefix: str,
                     emulators: RunningEmulators, tmp_path: Path) -> AsyncIterator[str]:
    """A `voicegw serve` child whose capacity is forced low by its CPU limit (its
    event-loop limit out of the way: the machine is shared)."""
    urls = emulators.base_urls()
    settings = make_settings(
        redis_url, database_url, key_prefix, run_sink="false",
        openai_api_key="emulator-key", openai_base_url=urls["openai"],
        elevenlabs_api_key="emulator-key", elevenlabs_base_url=urls["elevenlabs"],
        twilio_api_base=urls["twilio"], call_cpu_limit=CPU_LIMIT,
        call_lag_limit_ms=2000, max_calls=50)
    port = free_port()
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        process = await start_serve(settings, port, out, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_overload_refuses_the_calls_past_capacity_and_keeps_the_admitted_intact(
        child_base: str, emulators: RunningEmulators) -> None:
    async with aiohttp.ClientSession() as http:
        await _tenant(http, child_base)
        endpoint = Endpoint(child_base, "https://gw.test", TWILIO_AUTH_TOKEN, ACCOUNT_SID,
                            emulators.base)

        async def offer(index: int) -> CallResult:
            await asyncio.sleep(index * APART_S)
            call = SimulatedCall(endpoint, NUMBER, f"+1555000{index:04d}", CallScript(
                ["What are your opening hours on Saturday"], max_call_s=30), http)
            return await call.run()

        results = await asyncio.gather(*(offer(i) for i in range(OFFERED)))
        async with http.get(f"{child_base}/metrics") as response:
            metrics = await response.text()
    admitted = [r for r in results if not r.refused_with]
    refused = [r for r in results if r.refused_with]
    assert admitted and refused, [r.refused_with for r in results]
    assert results[0] in admitted  # an idle process takes a call
    for result in refused:  # cleanly: the busy message, no stream, nothing else
        assert result.refused_with == [BUSY]
        assert result.first_audio_ms is None and result.ended_by == ""
    for result in admitted:  # every admitted call whole and within its bound
        assert result.ended_by == "caller", result
        assert result.first_audio_ms is not None
        assert len(result.turn_latencies_ms) == 1, result
        assert max(result.turn_latencies_ms) <= TURN_BOUND_MS, result.turn_latencies_ms
    match = re.search(r'^voicegw_calls_refused_total\{reason="cpu"\} (\S+)', metrics, re.M)
    assert match is not None and float(match.group(1)) == len(refused)

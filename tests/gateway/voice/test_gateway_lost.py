"""A real `voicegw serve` process killed with SIGKILL mid-call: the sweeper charges the
call what it last recorded, at most `VOICEGW_USAGE_REPORT_S` behind the crash, and the
record says `gateway_lost` with its usage."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.cli_metering import drain
from gateway.config import Settings
from gateway.embedded import free_port
from load.caller import CallScript, Endpoint, SimulatedCall
from load.emulators.server import RunningEmulators
from metering.control import PHONE_POLICY
from metering.credit_store import CreditStore
from metering.meters import Meter
from metering.ratecard import default_rate_card
from metering.rating import rate_usage
from metering.sink import Sink
from tests.gateway.helpers import TWILIO_AUTH_TOKEN, make_settings, start_serve
from tests.gateway.voice.conftest import ACCOUNT_SID, ADMIN, CALLER, NUMBER, OPERATOR
from tests.gateway.voice.test_calls import emulated_usage

REPORT_S = 2.0  # VOICEGW_USAGE_REPORT_S of the child
KILL_AFTER_S = 8.0
# What the record may lag the crash beyond REPORT_S: one record's round trip to Redis
# and the child's event loop being late on a busy two-core machine.
SLACK_S = 1.0


@dataclass
class Child:
    process: asyncio.subprocess.Process
    base: str
    settings: Settings
    log: Path


@pytest.fixture
async def child(redis_url: str, database_url: str, key_prefix: str,
                emulators: RunningEmulators, tmp_path: Path) -> AsyncIterator[Child]:
    """`python -m gateway.cli serve` on the emulators, without its own sink."""
    urls = emulators.base_urls()
    settings = make_settings(
        redis_url, database_url, key_prefix, run_sink="false",
        openai_api_key="emulator-key", openai_base_url=urls["openai"],
        elevenlabs_api_key="emulator-key", elevenlabs_base_url=urls["elevenlabs"],
        twilio_api_base=urls["twilio"], usage_report_s=REPORT_S)
    port = free_port()
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        process = await start_serve(settings, port, out, log)
    base = f"http://127.0.0.1:{port}"
    try:
        yield Child(process, base, settings, log)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 30)


async def _tenant(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    created = await (await http.post(f"{base}/admin/tenants", json={"name": "Acme Dental"},
                                     headers=ADMIN)).json()
    assigned = await http.post(f"{base}/admin/tenants/{created['id']}/numbers", headers=ADMIN,
                               json={"phone_number": NUMBER, "kind": "local",
                                     "operator_number": OPERATOR})
    assert assigned.status == 201, await assigned.text()
    topup = await http.post(f"{base}/v1/topups", json={"credits": 1_000}, headers={
        "Authorization": f"Bearer {created['api_key']}", "Idempotency-Key": "first"})
    assert topup.status == 201, await topup.text()
    return created["id"], created["api_key"]


async def _record_via_api(settings: Settings, api_key: str, call_sid: str) -> dict[str, Any]:
    """The call record as `GET /v1/calls/{sid}` shows it, from a fresh in-process gateway
    (the one that ran the call is dead)."""
    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            response = await http.get(server.make_url(f"/v1/calls/{call_sid}"),
                                      headers={"Authorization": f"Bearer {api_key}"})
            assert response.status == 200, await response.text()
            record: dict[str, Any] = await response.json()
            return record
    finally:
        await server.close()


async def test_sigkill_mid_call_is_billed_up_to_the_last_usage_record(
        child: Child, emulators: RunningEmulators, redis_client: aioredis.Redis,
        key_prefix: str, pg_pool: asyncpg.Pool) -> None:
    async with aiohttp.ClientSession() as http:
        tenant, api_key = await _tenant(http, child.base)
        endpoint = Endpoint(child.base, "https://gw.test", TWILIO_AUTH_TOKEN, ACCOUNT_SID,
                            emulators.base)
        call = SimulatedCall(endpoint, NUMBER, CALLER, CallScript(
            ["What are your opening hours?"], hang_up_when_done=False, max_call_s=30), http)
        placed = time.monotonic()
        running = asyncio.create_task(call.run())
        while call.result.first_audio_ms is None:  # the call is live on the child
            assert not running.done(), call.result
            await asyncio.sleep(0.01)
        live_since = time.monotonic()
        await asyncio.sleep(KILL_AFTER_S - (live_since - placed))
        child.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await child.process.wait()
        result = await asyncio.wait_for(running, 10)
    assert result.ended_by == "gateway"
    assert result.said == ["What are your opening hours?"]

    store = CreditStore(redis_client, key_prefix)
    session_id = f"call_{result.call_sid}"
    assert await store.live_sessions(tenant) == [session_id]  # nobody settled it
    past_the_hold = int(time.time() * 1000) + PHONE_POLICY.validity_ms + 1
    assert await store.sweep_all(past_the_hold) == [session_id]
    await drain(Sink(redis_client, pg_pool, key_prefix))
    record = await _record_via_api(child.settings, api_key, result.call_sid)

    assert (record["status"], record["disposition"]) == ("swept", "gateway_lost")
    call_ms = record["usage"][Meter.CALL_SECONDS.value]
    # The call was live on the child from (before) the first agent audio to the kill, and
    # no longer than from placing it: the record lags the kill by at most REPORT_S + slack.
    ran_at_least_ms = int((killed - live_since) * 1000)
    ran_at_most_ms = int((killed - placed) * 1000)
    lower_ms = ran_at_least_ms - int((REPORT_S + SLACK_S) * 1000)
    assert lower_ms <= call_ms <= ran_at_most_ms, (lower_ms, call_ms, ran_at_most_ms)
    # Its end is the last record, not the sweep two minutes later.
    assert lower_ms <= record["duration_ms"] <= ran_at_most_ms, record["duration_ms"]
    card = default_rate_card()
    charged = record["micro_credits"]
    assert charged == rate_usage(card, record["usage"]).total
    assert sum(record["charges_micro_credits"].values()) == charged
    assert charged >= rate_usage(card, {Meter.CALL_SECONDS.value: lower_ms}).total > 0
    used = {**emulated_usage(emulators), Meter.CALL_SECONDS.value: ran_at_most_ms}
    assert charged <= rate_usage(card, used).total
    for meter, units in emulated_usage(emulators).items():
        assert record["usage"].get(meter, 0) <= units, meter
    balance = await store.balance(tenant)
    assert (balance.reserved, balance.billed) == (0, charged)
    assert balance.topped_up == balance.available + balance.billed



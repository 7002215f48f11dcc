"""The media stream's token check against a private Redis that restarts or stays down:
a restart between the webhook and the stream does not stop the call; a Redis that is
down closes the socket 1011 (try again), not 1002/1008, and nothing is left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from gateway.state import SESSIONS
from load import twilio_wire
from load.caller import CallScript, SimulatedCall
from load.emulators.server import RunningEmulators
from tests.gateway.outages import private_redis
from tests.gateway.voice.conftest import ACCOUNT_SID, CALLER, NUMBER, Gateway, start_gateway
from tests.gateway.voice.test_calls import endpoint


async def _start_stream(gateway: Gateway, http: aiohttp.ClientSession,
                        call: SimulatedCall, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{gateway.base}/twilio/stream")
    await ws.send_str(twilio_wire.connected())
    await ws.send_str(twilio_wire.start(call.stream_sid, call.result.call_sid, ACCOUNT_SID,
                                        {"token": token}))
    return ws


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    async with asyncio.timeout(15):
        async for _ in ws:
            pass
    return ws.close_code


async def test_token_check_survives_a_restart_and_a_down_redis_closes_1011(
        database_url: str, key_prefix: str, emulators: RunningEmulators,
        tmp_path: Path) -> None:
    async with private_redis(tmp_path / "redis") as redis:
        gateway = await start_gateway(redis.url, database_url, key_prefix, emulators,
                                      100_000)
        try:
            async with aiohttp.ClientSession() as http:
                # Restarted between the webhook and the stream: the call starts.
                call = SimulatedCall(endpoint(gateway), NUMBER, CALLER, CallScript(), http)
                token = (await call.fetch_twiml()).parameters["token"]
                await redis.stop()
                await redis.start()
                ws = await _start_stream(gateway, http, call, token)
                for _ in range(100):
                    if len(gateway.server.app[SESSIONS]) == 1:
                        break
                    await asyncio.sleep(0.05)
                assert len(gateway.server.app[SESSIONS]) == 1  # the call is live
                await ws.send_str(twilio_wire.stop(call.stream_sid, 5, call.result.call_sid,
                                                   ACCOUNT_SID))
                await _close_code(ws)

                # Down when the stream starts: 1011, the caller's side may try again.
                second = SimulatedCall(endpoint(gateway), NUMBER, CALLER, CallScript(), http)
                token = (await second.fetch_twiml()).parameters["token"]
                await redis.stop()
                ws = await _start_stream(gateway, http, second, token)
                assert await _close_code(ws) == 1011
                assert len(gateway.server.app[SESSIONS]) == 0
        finally:
            await gateway.server.close()

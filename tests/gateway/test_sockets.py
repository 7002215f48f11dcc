"""Socket bounds on a real gateway served by `serve_until_stopped` on a loopback port:
500 raw connections (half with an unfinished request line, half silent) are all closed
within the bound, connections past the per-address cap are closed at once, and a normal
request and a long quiet websocket still work.

Client sockets are bound to distinct loopback addresses (127.0.0.2, .3, ...) so that each
group has an address of its own for the per-address cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
import uvloop

from gateway.config import Settings
from gateway.runner import serve_until_stopped
from tests.gateway.helpers import make_settings
from tests.prom import sample

HEADER_S = 1.0
# Longer than it takes the shared loop to accept a group: under asyncio debug mode on a
# slow machine the server admitted the 265 of the capped group over 2 s, so with a 2 s
# idle timer the first ones were closed before the last arrived and the cap never filled.
IDLE_S = 4.0
CAP = 260
SLACK_S = 1.5  # timer granularity and a loaded two-core machine
# The client and the server share one loop: a busy loop stamps a connection's opening on
# the client side late, so a lifetime may read short by this much (still well above
# HEADER_S: the idle rule, not the header rule, closed it). A run under asyncio debug mode
# on a loaded machine saw 0.67 s (its loop was blocked 0.6 s opening the 265 sockets),
# and one in the full suite on a slow host 0.82 s; the garbage collector, whose pauses
# over the suite's heap did most of that, is held off while the sockets are timed.
EARLY_S = 1.2


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def on_started(_app: object, port: int) -> None:
        started.set_result(port)

    task = asyncio.create_task(serve_until_stopped(settings, on_started=on_started,
                                                   stop=stop))
    try:
        async with asyncio.timeout(20):
            yield await started
    finally:
        stop.set()
        await task


async def _closed_after(reader: asyncio.StreamReader, opened: float) -> float:
    """Seconds from `opened` until the server closed the connection."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    return time.monotonic() - opened


class Group:
    """Raw connections from one source address, each watched from the moment it opened."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.watchers: list[asyncio.Task[float]] = []

    async def open(self, port: int, source: str, first_bytes: bytes, count: int) -> Group:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0))
            opened = time.monotonic()
            self.watchers.append(asyncio.create_task(_closed_after(reader, opened)))
            self.writers.append(writer)
            if first_bytes:
                writer.write(first_bytes)
        return self

    async def lifetimes(self) -> list[float]:
        try:
            return list(await asyncio.gather(*self.watchers))
        finally:
            for writer in self.writers:
                writer.close()


@pytest.fixture
def settings(redis_url: str, database_url: str, key_prefix: str) -> Settings:
    return make_settings(redis_url, database_url, key_prefix, run_sink="false",
                         host="127.0.0.1", port=0, header_timeout_s=HEADER_S,
                         idle_timeout_s=IDLE_S, max_connections_per_ip=CAP)


async def _idle_and_unfinished_connections_are_closed_and_capped(settings: Settings) -> None:
    async with serving(settings) as port:
        # The capped group first: the cap counts connections the server has accepted, and
        # the shared loop accepts later while it is busy opening the other 500.
        capped = await Group().open(port, "127.0.0.4", b"", CAP + 5)
        partial = await Group().open(port, "127.0.0.2", b"GET /healthz HT", 250)
        silent = await Group().open(port, "127.0.0.3", b"", 250)
        async with asyncio.timeout(IDLE_S + 2 * SLACK_S + 5):
            partial_s, silent_s, capped_s = await asyncio.gather(
                partial.lifetimes(), silent.lifetimes(), capped.lifetimes())
        async with aiohttp.ClientSession() as http:
            scrape = await (await http.get(f"http://127.0.0.1:{port}/metrics")).text()
    # Every socket was closed by the server, each by the right rule.
    assert max(partial_s) < HEADER_S + SLACK_S
    assert min(silent_s) >= IDLE_S - EARLY_S and max(silent_s) < IDLE_S + SLACK_S
    # The 5 past the cap were closed by the cap rule, on arrival: the server counted
    # exactly 5 such closes, and they closed before any admitted one of the group. (Not
    # timed against HEADER_S: the client and the server share a loop that asyncio debug
    # mode on a slow machine kept busy for about a second opening the 765 sockets.)
    assert sample(scrape, "voicegw_connections_closed_total", reason="per_address_cap") == 5
    refused, admitted = sorted(capped_s)[:5], sorted(capped_s)[5:]
    assert max(refused) < min(admitted)
    assert min(admitted) >= IDLE_S - EARLY_S  # the first CAP ones were admitted


async def _requests_keep_alive_and_websockets_are_not_cut(settings: Settings) -> None:
    async with serving(settings) as port, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        ws = await http.ws_connect(f"{base}/twilio/stream")
        # Longer than both timers: an upgraded socket is a request in progress, not idle.
        await asyncio.sleep(IDLE_S + HEADER_S + 0.5)
        assert not ws.closed
        response = await http.get(f"{base}/healthz")
        assert response.status == 200
        await ws.send_str("not json")
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
        assert ws.close_code not in (None, 1006)  # the app answered, nobody cut it

        # A keep-alive connection that answered a request is closed once idle.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        answered = time.monotonic()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        closed_s = await _closed_after(reader, answered)
        writer.close()
        assert IDLE_S - EARLY_S <= closed_s < IDLE_S + SLACK_S


Scenario = Callable[[Settings], Coroutine[Any, Any, None]]


def _run(loop: str, scenario: Scenario, settings: Settings) -> None:
    """On the loop `voicegw serve` uses (uvloop) and on asyncio's own."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    gc.disable()  # its pauses would stamp the lifetimes late, not the server's timers
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(scenario(settings))
    finally:
        gc.enable()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_idle_and_unfinished_connections_are_closed_and_capped_per_address(
        settings: Settings, loop: str) -> None:
    _run(loop, _idle_and_unfinished_connections_are_closed_and_capped, settings)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_requests_keep_alive_and_websockets_are_not_cut(settings: Settings, loop: str) -> None:
    _run(loop, _requests_keep_alive_and_websockets_are_not_cut, settings)

"""Client sockets with bounds: idle and slow connections are closed, and one client
address holds a limited number of them.

aiohttp closes an idle keep-alive connection (`keepalive_timeout`), but it has no
separate deadline for a request line and headers that trickle in, and no cap per
client address, so 500 sockets that send half a request line stay open as long as the
idle timer allows. This module stands between the event loop's transport and aiohttp's
protocol (it sees every connection open, receive and close) and, through a middleware,
knows when a request is being handled:

- a connection that is between requests (just opened, or its last answer given) is
  closed after `idle_timeout_s`;
- once the first byte of a request arrives, its request line and headers must be
  complete (the handler started) within `header_timeout_s`;
- while a handler runs there is no timer: a media-stream websocket is one request that
  lasts the whole call, and it is never idle;
- a client address with `max_per_address` open connections gets its next one closed
  at once (0: no cap). The count is per process: with `serve --workers N` the kernel
  spreads connections over the workers, so one address may hold up to N times the cap.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.config import Settings
from gateway.metrics import Metrics

ProtocolFactory = Callable[[], asyncio.Protocol]


@dataclass(frozen=True)
class SocketLimits:
    idle_timeout_s: float
    header_timeout_s: float
    max_per_address: int  # 0: no cap

    @classmethod
    def from_settings(cls, settings: Settings) -> SocketLimits:
        return cls(settings.idle_timeout_s, settings.header_timeout_s,
                   settings.max_connections_per_ip)


class _Connection:
    """One client connection's timer: idle between requests, a deadline while a request
    head arrives, none while a handler runs."""

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport,
                 address: str | None) -> None:
        self.guard = guard
        self.transport = transport
        self.address = address
        self.handling = 0
        self.head_started = False
        self.gone = False
        self._timer: asyncio.TimerHandle | None = None

    def _arm(self, delay_s: float, reason: str) -> None:
        self.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._expire, reason)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def between_requests(self) -> None:
        self.head_started = False
        if not self.gone:  # a handler may end after its client went away
            self._arm(self.guard.limits.idle_timeout_s, "idle")

    def received(self) -> None:
        if self.handling == 0 and not self.head_started:
            self.head_started = True
            self._arm(self.guard.limits.header_timeout_s, "header_timeout")

    def request_started(self) -> None:
        self.handling += 1
        self.cancel()

    def request_finished(self) -> None:
        self.handling -= 1
        if self.handling == 0:
            self.between_requests()

    def _expire(self, reason: str) -> None:
        self._timer = None
        self.guard.closed(reason)
        if reason == "idle":
            self.transport.close()
        else:  # a client that sends half a request may not read either: no lingering
            self.transport.abort()


class _GuardedProtocol(asyncio.Protocol):
    """Forwards every event to aiohttp's protocol, created only once the connection is
    admitted, and tells the guard what happens."""

    def __init__(self, guard: ConnectionGuard, make_handler: ProtocolFactory) -> None:
        self._guard = guard
        self._make_handler = make_handler
        self._inner: asyncio.Protocol | None = None
        self._connection: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        tcp = cast(asyncio.Transport, transport)
        connection = self._guard.admit(tcp)
        if connection is None:
            tcp.abort()
            return
        self._connection = connection
        self._inner = self._make_handler()
        self._inner.connection_made(tcp)
        connection.between_requests()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None and self._connection is not None:
            self._connection.received()
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._guard.release(self._connection)
        if self._inner is not None:
            self._inner.connection_lost(exc)


class ConnectionGuard:
    """The bounds of one process's client connections."""

    def __init__(self, limits: SocketLimits, metrics: Metrics) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._per_address: collections.Counter[str] = collections.Counter()
        self._closed = metrics.connections_closed
        self._gauge = metrics.open_connections

    def protocol_factory(self, make_handler: ProtocolFactory) -> ProtocolFactory:
        return lambda: _GuardedProtocol(self, make_handler)

    def admit(self, transport: asyncio.Transport) -> _Connection | None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        cap = self.limits.max_per_address
        if address is not None and cap and self._per_address[address] >= cap:
            self.closed("per_address_cap")
            return None
        if address is not None:
            self._per_address[address] += 1
        connection = _Connection(self, transport, address)
        self._open[transport] = connection
        self._gauge.set(len(self._open))
        return connection

    def release(self, connection: _Connection) -> None:
        connection.gone = True
        connection.cancel()
        if self._open.pop(connection.transport, None) is None:
            return
        if connection.address is not None:
            self._per_address[connection.address] -= 1
            if self._per_address[connection.address] <= 0:
                del self._per_address[connection.address]
        self._gauge.set(len(self._open))

    def closed(self, reason: str) -> None:
        self._closed.labels(reason=reason).inc()

    def middleware(self) -> Middleware:
        @web.middleware
        async def connection_timers(request: web.Request,
                                    handler: Handler) -> web.StreamResponse:
            connection = self._open.get(request.transport) if request.transport else None
            if connection is None:  # not one of ours (a test server), or already gone
                return await handler(request)
            connection.request_started()
            try:
                return await handler(request)
            finally:
                connection.request_finished()

        return connection_timers


# Connections the kernel holds for the process to accept. aiohttp's default, 128,
# overflowed in a burst of a few hundred connections on a busy loop: the kernel then drops
# the handshake's last step, the client believes it is connected, and the server sees the
# connection only when its SYN-ACK is retried 1-3 s later (`nstat` ListenOverflows). The
# kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with every accepted connection going through the guard."""

    def __init__(self, runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int,
                 *, reuse_port: bool = False) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self._guard = guard
        self._host, self._port, self._reuse_port = host, port, reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port,
            backlog=self._backlog, reuse_port=self._reuse_port or None)

"""What the notification tests share: a real aiohttp webhook receiver on port 0, a clock
the tests move, a real aiosmtpd mail catcher, and a tenant with an endpoint."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from gateway.dev_mail import MailCatcher
from metering.notify.endpoints import CreatedEndpoint, create_endpoint
from tests.metering.ledger import insert_tenant

Behaviour = Callable[[int], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, object]:
        loaded: dict[str, object] = orjson.loads(self.body)
        return loaded


@dataclass
class Receiver:
    """Answers each request with `behaviour(n)` (n: the request's number, from 1)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    behaviour: Behaviour | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(dict(request.headers), await request.read()))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.behaviour is not None:
                return await self.behaviour(len(self.received))
            return web.Response(status=204)
        finally:
            self.in_flight -= 1

    def verified(self, secret: str) -> list[dict[str, object]]:
        """Every request's event, each checked with the standardwebhooks package."""
        hook = Webhook(secret)
        return [hook.verify(r.body, r.headers) for r in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    app.router.add_get("/elsewhere", found.handle)
    app.router.add_post("/elsewhere", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


@pytest.fixture
async def mail_catcher() -> AsyncIterator[tuple[MailCatcher, str]]:
    catcher = MailCatcher()
    port = await catcher.start("127.0.0.1", 0)
    yield catcher, f"smtp://127.0.0.1:{port}"
    await catcher.stop()


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def tenant_with_endpoint(pool: asyncpg.Pool, url: str, events: list[str]
                               ) -> tuple[uuid.UUID, CreatedEndpoint]:
    tenant = uuid.UUID(await insert_tenant(pool))
    return tenant, await create_endpoint(pool, tenant, url, events, allow_private=True)


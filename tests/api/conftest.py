"""A running gateway app on real Redis and PostgreSQL, and API helpers."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.context import CLOCK
from gateway.app import create_app
from gateway.dev_mail import MailCatcher
from tests.gateway.helpers import ADMIN_TOKEN, make_settings
from tests.metering.notify_env import receiver  # noqa: F401 - a fixture of the webhook tests

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LINK = re.compile(r"/login#(invite|reset)=(vgl_[A-Za-z0-9_-]+)")


@dataclass
class Tenant:
    id: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> Client:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false")
    return await aiohttp_client(create_app(settings))


async def new_tenant(client: Client, name: str = "Acme Dental") -> Tenant:
    response = await client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    return Tenant(body["id"], body["api_key"])


@pytest.fixture
async def tenant(client: Client) -> Tenant:
    return await new_tenant(client)


class MovableClock:
    """The time the billing API and the billing cycle act at; tests set `at`."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def at(text: str) -> dt.datetime:
    """"2026-11-05 10:00" in UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(at("2026-11-05 10:00"))


@pytest.fixture
async def billing_client(aiohttp_client: ClientFactory, redis_url: str, database_url: str,
                         key_prefix: str, clock: MovableClock) -> Client:
    """The gateway on `clock`, issuing invoices as ACME, webhooks to loopback allowed."""
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false",
                             invoice_issuer="ACME", webhooks_allow_private="true")
    app = create_app(settings)
    app[CLOCK] = clock
    return await aiohttp_client(app)


@dataclass
class Mailbox:
    """The mail the gateway sent, caught by a real SMTP server (aiosmtpd)."""

    catcher: MailCatcher
    port: int

    async def link(self, recipient: str, purpose: str = "invite") -> str:
        """The token of the newest link mailed to `recipient` (waits up to 10 s)."""
        async def arrived() -> str:
            while True:
                for mail in reversed(self.catcher.mails):
                    found = LINK.search(mail.body)
                    if recipient in mail.recipients and found and found[1] == purpose:
                        return found[2]
                await asyncio.sleep(0.05)
        return await asyncio.wait_for(arrived(), 10)


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    catcher = MailCatcher()
    port = await catcher.start("127.0.0.1", 0)
    yield Mailbox(catcher, port)
    await catcher.stop()


@pytest.fixture
async def accounts_client(aiohttp_client: ClientFactory, redis_url: str, database_url: str,
                          key_prefix: str, clock: MovableClock, mailbox: Mailbox) -> Client:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false",
                             smtp_url=f"smtp://127.0.0.1:{mailbox.port}",
                             webhooks_allow_private="true")
    app = create_app(settings)
    app[CLOCK] = clock
    return await aiohttp_client(app)

"""A running gateway app on real Redis and PostgreSQL, and API helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.context import CLOCK
from gateway.app import create_app
from tests.gateway.helpers import ADMIN_TOKEN, make_settings
from tests.metering.notify_env import receiver  # noqa: F401 - a fixture of the webhook tests

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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

"""A running gateway app on real Redis and PostgreSQL, and API helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from tests.gateway.helpers import ADMIN_TOKEN, make_settings

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

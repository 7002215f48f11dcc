"""A gateway on a real loopback server, real Redis and PostgreSQL, with the vendor
emulators standing in for OpenAI, ElevenLabs and Twilio, and a tenant with a number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.cli_metering import drain
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from metering.sink import Sink
from tests.gateway.helpers import ADMIN_TOKEN, TWILIO_AUTH_TOKEN, make_settings

ACCOUNT_SID = "AC" + "0" * 32
NUMBER = "+15550100001"
OPERATOR = "+15550100999"
CALLER = "+15557654321"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Gateway:
    server: TestServer
    emulators: RunningEmulators
    tenant_id: str
    api_key: str

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def drain_outbox(self) -> None:
        app = self.server.app
        from api.context import PG_POOL, REDIS, REDIS_PREFIX

        await drain(Sink(app[REDIS], app[PG_POOL], app[REDIS_PREFIX]))


@pytest.fixture
async def emulators() -> AsyncIterator[RunningEmulators]:
    config = EmulatorConfig(
        chat=ChatState(ChatTiming(ttfb_ms=5, tokens_per_s=0)),
        vendors=VendorState(twilio_accounts={ACCOUNT_SID: TWILIO_AUTH_TOKEN},
                            graph_token="g", tts_pacing=0))
    running = await start_emulators(config=config)
    yield running
    await running.stop()


async def start_gateway(redis_url: str, database_url: str, key_prefix: str,
                        emulators: RunningEmulators, credits: int,
                        number: str = NUMBER, **overrides: Any) -> Gateway:
    urls = emulators.base_urls()
    settings = make_settings(
        redis_url, database_url, key_prefix, run_sink="false",
        openai_api_key="emulator-key", openai_base_url=urls["openai"],
        elevenlabs_api_key="emulator-key", elevenlabs_base_url=urls["elevenlabs"],
        twilio_api_base=urls["twilio"], **overrides)
    server = TestServer(create_app(settings))
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as http:
        created = await (await http.post("admin/tenants", json={"name": "Acme Dental"},
                                         headers=ADMIN)).json()
        assigned = await http.post(f"admin/tenants/{created['id']}/numbers", headers=ADMIN,
                                   json={"phone_number": number, "kind": "local",
                                         "operator_number": OPERATOR})
        assert assigned.status == 201, await assigned.text()
        auth = {"Authorization": f"Bearer {created['api_key']}",
                "Idempotency-Key": "first"}
        if credits:
            topup = await http.post("v1/topups", json={"credits": credits}, headers=auth)
            assert topup.status == 201, await topup.text()
    return Gateway(server, emulators, created["id"], created["api_key"])


@pytest.fixture
async def gateway(redis_url: str, database_url: str, key_prefix: str,
                  emulators: RunningEmulators) -> AsyncIterator[Gateway]:
    running = await start_gateway(redis_url, database_url, key_prefix, emulators, 100_000)
    yield running
    await running.server.close()


@pytest.fixture
async def pg_pool_of_gateway(gateway: Gateway) -> asyncpg.Pool:
    from api.context import PG_POOL

    return gateway.server.app[PG_POOL]

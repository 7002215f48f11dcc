"""A gateway with the messaging channels on real Redis and PostgreSQL, pointed at the real
vendor emulators, a tenant holding a WhatsApp number and an SMS number, and helpers to
post signed webhooks (built by the load sender, so the two sides are proved to agree).

Loaded as a pytest plugin by tests/conftest.py: fixtures `messaging_env` and
`messaging_emulators`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from api.context import PG_POOL, REDIS, REDIS_PREFIX
from gateway.config import Settings
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from load.messages import sign_whatsapp, twilio_signature, whatsapp_value, whatsapp_webhook
from metering.agent_configs import AgentConfig, save_agent_config
from metering.sink import Sink
from metering.tenants import PhoneNumber, add_number
from tests.gateway.helpers import ADMIN_TOKEN, TWILIO_AUTH_TOKEN, make_settings

if TYPE_CHECKING:  # the app is imported lazily: this module is a plugin of every test run
    from gateway.messaging.deps import Messaging

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

APP_SECRET = "test-whatsapp-app-secret"
VERIFY_TOKEN = "test-verify-token"
GRAPH_TOKEN = "test-graph-token"
ACCOUNT_SID = "AC" + "0" * 32
PHONE_NUMBER_ID = "106540352242922"
NUMBER = "+15550100001"
PUBLIC_URL = "https://gw.test"


def settings_for(redis_url: str, database_url: str, key_prefix: str,
                 emulators: RunningEmulators) -> Settings:
    urls = emulators.base_urls()
    return make_settings(
        redis_url, database_url, key_prefix, run_sink="false", openai_api_key="k",
        openai_base_url=urls["openai"], graph_api_base=urls["graph"],
        whatsapp_access_token=GRAPH_TOKEN, whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN, twilio_api_base=urls["twilio"])


@dataclass
class MessagingEnv:
    client: Client
    emulators: RunningEmulators
    factory: ClientFactory
    settings: Settings
    tenant: uuid.UUID = field(default_factory=uuid.uuid4)
    api_key: str = ""
    clients: list[Client] = field(default_factory=list)

    @property
    def m(self) -> Messaging:
        from gateway.messaging.deps import MESSAGING

        messaging: Messaging = self.client.app[MESSAGING]
        return messaging

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def vendors(self) -> VendorState:
        return self.emulators.config.vendors

    async def second_gateway(self) -> Client:
        """Another gateway process's app on the same Redis and PostgreSQL."""
        from gateway.app import create_app

        other = await self.factory(create_app(self.settings))
        self.clients.append(other)
        return other

    async def topup(self, credits: int, key: str | None = None) -> None:
        response = await self.client.post(
            "/v1/topups", json={"credits": credits},
            headers={**self.auth, "Idempotency-Key": key or uuid.uuid4().hex})
        assert response.status == 201, await response.text()

    async def configure(self, **fields: Any) -> None:
        from gateway.messaging.deps import MESSAGING

        await save_agent_config(self.m.pool, self.tenant, AgentConfig(**fields))
        for client in self.clients:
            client.app[MESSAGING].profiles._cache.clear()

    def open_window(self, customer: str) -> None:
        """Meta's side of the window: the customer wrote (the Graph emulator must be told)."""
        self.vendors.windows[(PHONE_NUMBER_ID, customer)] = self.vendors.clock()

    async def post_whatsapp(self, payload: Mapping[str, Any] | bytes, *,
                            client: Client | None = None, signature: str | None = "auto"
                            ) -> aiohttp.ClientResponse:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if signature == "auto":
            signature = sign_whatsapp(body, APP_SECRET)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return await (client or self.client).post("/whatsapp/webhook", data=body,
                                                   headers=headers)

    async def post_sms(self, form: Mapping[str, str], *, path: str = "/twilio/sms",
                       client: Client | None = None, signature: str | None = "auto"
                       ) -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature == "auto":
            signature = twilio_signature(PUBLIC_URL + path, form, TWILIO_AUTH_TOKEN)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await (client or self.client).post(path, data=urlencode(form), headers=headers)

    async def settle(self) -> None:
        """Waits for every gateway's background work, then drains the outbox to PostgreSQL."""
        from gateway.cli_metering import drain
        from gateway.messaging.deps import MESSAGING

        for client in self.clients:
            await client.app[MESSAGING].worker.idle()
        app = self.client.app
        await drain(Sink(app[REDIS], app[PG_POOL], app[REDIS_PREFIX]))

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.m.pool.fetch(sql, *args)]

    async def count(self, table: str, where: str = "true", *args: Any) -> int:
        value = await self.m.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE {where}", *args)  # noqa: S608 - tests' own
        return int(value)

    def graph_sent(self, to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.vendors.graph_messages if to is None or m["to"] == to]


def one_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return whatsapp_webhook([whatsapp_value(PHONE_NUMBER_ID, messages)])


@pytest.fixture
async def messaging_emulators() -> AsyncIterator[RunningEmulators]:
    config = EmulatorConfig(ChatState(ChatTiming(0, 0)),
                            VendorState(twilio_accounts={ACCOUNT_SID: TWILIO_AUTH_TOKEN},
                                        graph_token=GRAPH_TOKEN))
    running = await start_emulators(config=config)
    yield running
    await running.stop()


@pytest.fixture
async def messaging_env(aiohttp_client: ClientFactory, redis_url: str, database_url: str,
                        key_prefix: str, redis_client: Any,
                        messaging_emulators: RunningEmulators) -> MessagingEnv:
    from gateway.app import create_app

    emulators = messaging_emulators
    settings = settings_for(redis_url, database_url, key_prefix, emulators)
    client = await aiohttp_client(create_app(settings))
    created = await client.post("/admin/tenants", json={"name": "Acme Dental"},
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    body = await created.json()
    env = MessagingEnv(client, emulators, aiohttp_client, settings, uuid.UUID(body["id"]),
                       body["api_key"], [client])
    await add_number(client.app[PG_POOL], PhoneNumber(NUMBER, env.tenant, "mobile",
                                                      PHONE_NUMBER_ID, None))
    return env

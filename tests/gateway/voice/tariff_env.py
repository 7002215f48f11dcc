"""A gateway for tariff scenarios: real loopback server, Redis, PostgreSQL, the vendor
emulators, a real SMTP catcher, and a billing clock the test moves; tenants with numbers,
real calls through the gateway, and `voicegw` CLI children."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from api.context import CLOCK, PG_POOL, REDIS, REDIS_PREFIX
from gateway.app import create_app
from gateway.cli_metering import drain
from gateway.config import Settings
from load.caller import CallScript, Endpoint, SimulatedCall
from load.emulators.server import RunningEmulators
from metering.sink import Sink
from tests.gateway.helpers import TWILIO_AUTH_TOKEN, make_settings, serve_env
from tests.gateway.voice.conftest import ACCOUNT_SID, ADMIN, CALLER, OPERATOR


@dataclass
class MovableClock:
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class Tenant:
    id: str
    api_key: str
    number: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class TariffGateway:
    server: TestServer
    emulators: RunningEmulators
    settings: Settings
    clock: MovableClock
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def call(self, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=json,
                                     headers=headers or ADMIN) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, json: Any = None,
                 headers: dict[str, str] | None = None) -> Any:
        status, body = await self.call(method, path, json, headers)
        assert status in (200, 201), (status, body)
        return body

    async def tenant(self, name: str, number: str, credits: int = 5000) -> Tenant:
        created = await self.ok("POST", "/admin/tenants", {"name": name})
        await self.ok("POST", f"/admin/tenants/{created['id']}/numbers",
                      {"phone_number": number, "kind": "local", "operator_number": OPERATOR})
        tenant = Tenant(created["id"], created["api_key"], number)
        if credits:
            await self.ok("POST", "/v1/topups", {"credits": credits},
                          {**tenant.auth, "Idempotency-Key": "calls"})
        return tenant

    async def phone(self, tenant: Tenant, hang_up_after_s: float = 1.2) -> str:
        """One inbound call the agent answers (its greeting), hung up by the caller."""
        endpoint = Endpoint(self.base, "https://gw.test", TWILIO_AUTH_TOKEN, ACCOUNT_SID,
                            self.emulators.base)
        call = SimulatedCall(endpoint, tenant.number, CALLER,
                             CallScript([], hang_up_after_s=hang_up_after_s), self.http)
        result = await call.run()
        assert result.first_audio_ms is not None, "the agent never answered"
        return result.call_sid

    async def billed_seconds(self, tenant: Tenant, call_sids: list[str]) -> int:
        """The calls' billed seconds as their records say (ms rounded up per call)."""
        app = self.server.app
        total = 0
        for sid in call_sids:
            for _ in range(100):
                await drain(Sink(app[REDIS], app[PG_POOL], app[REDIS_PREFIX]))
                status, record = await self.call("GET", f"/v1/calls/{sid}", None, tenant.auth)
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert status == 200, record
            assert record["disposition"] == "caller_hung_up"
            total += math.ceil(record["usage"]["call_seconds"] / 1000)
        return total

    async def run_cli(self, *args: str) -> tuple[int, str, str]:
        """`voicegw <args>` as a child process: exit status, stdout, stderr."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", *args, env=serve_env(self.settings, 0),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def cli(self, *args: str) -> Any:
        """`voicegw <args>`, which must succeed; its JSON output."""
        code, out, err = await self.run_cli(*args)
        assert code == 0, err
        return orjson.loads(out)


def month_of(moment: dt.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def next_month_start(moment: dt.datetime) -> dt.datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


@pytest.fixture
async def tariff_gateway(redis_url: str, database_url: str, key_prefix: str,
                         emulators: RunningEmulators, smtp_url: str
                         ) -> AsyncIterator[TariffGateway]:
    """The test module provides `smtp_url`."""
    urls = emulators.base_urls()
    settings = make_settings(
        redis_url, database_url, key_prefix, run_sink="false", smtp_url=smtp_url,
        mail_from="Billing <billing@operator.test>",
        openai_api_key="emulator-key", openai_base_url=urls["openai"],
        elevenlabs_api_key="emulator-key", elevenlabs_base_url=urls["elevenlabs"],
        twilio_api_base=urls["twilio"])
    app = create_app(settings)
    clock = MovableClock()
    app[CLOCK] = clock
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield TariffGateway(server, emulators, settings, clock, http)
    await server.close()

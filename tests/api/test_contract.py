"""Schemathesis against a live gateway (aiohttp on loopback, real Redis and PostgreSQL):
every documented operation, a bounded number of generated requests each, with admin and
tenant credentials. No answer may be a server error, and every answer must match the
document (status documented, media type documented, body valid against its schema).

Left out, and why:
- `GET /twilio/stream` is a websocket upgrade: there is no HTTP answer to check beyond the
  documented 400 for a plain GET (tests/api/test_openapi.py).
- `GET /docs` and `GET /dashboard` are static pages (their tests are elsewhere).
- `GET /v1/live` is an endless event stream (tests/api/test_live.py).
The signed webhooks are fuzzed: unsigned input must answer their documented 401/403 (or
400/415/422 for a body that is not a form), never 5xx.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from tests.gateway.helpers import ADMIN_TOKEN, make_settings

EXAMPLES = 25  # per operation: the whole run takes about 20 s on two cores
SKIPPED = {("GET", "/twilio/stream"), ("GET", "/docs"), ("GET", "/dashboard"),
           ("GET", "/v1/live")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class LiveGateway:
    """The gateway app on a loopback port, in its own thread and event loop (schemathesis
    sends blocking requests)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        runner = web.AppRunner(self.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(30), "the gateway did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture
def live_gateway(redis_url: str, database_url_sync: str, key_prefix: str) -> Iterator[str]:
    settings_ = make_settings(redis_url, database_url_sync, key_prefix, run_sink="false",
                              whatsapp_app_secret="contract-secret",
                              whatsapp_verify_token="contract-verify",
                              # fuzzed webhook URLs are not resolved (no DNS in the run)
                              webhooks_allow_private="true",
                              # never the real vendors, whatever the fuzzer reaches
                              twilio_api_base="http://127.0.0.1:9",
                              graph_api_base="http://127.0.0.1:9")
    with LiveGateway(create_app(settings_)) as base_url:
        yield base_url


def _tenant(base_url: str, name: str) -> dict[str, str]:
    created = requests.post(f"{base_url}/admin/tenants", json={"name": name},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert created.status_code == 201, created.text
    body: dict[str, str] = created.json()
    topup = requests.post(f"{base_url}/v1/topups", json={"credits": 50},
                          headers={"Authorization": f"Bearer {body['api_key']}",
                                   "Idempotency-Key": "contract-1"}, timeout=10)
    assert topup.status_code == 201, topup.text
    return body


def test_the_live_api_keeps_its_document(live_gateway: str) -> None:
    base_url = live_gateway
    # Operators' fuzzed calls add numbers to one tenant; the tenant API is fuzzed with the
    # key of another, which holds no number: POST /v1/messages then stops at 409
    # no_sender_number instead of calling a vendor.
    tenant = _tenant(base_url, "Contract Co")
    owner = _tenant(base_url, "Numbers Co")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    credentials = {"admin": f"Bearer {ADMIN_TOKEN}", "tenant": f"Bearer {tenant['api_key']}"}
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        tested += 1
        security = operation.definition.raw.get("security") or [{}]
        scheme = next(iter(security[0]), None)
        headers = {"Authorization": credentials[scheme]} if scheme in credentials else {}
        failures.extend(_run(operation, base_url, headers, owner["id"]))
    assert tested >= 20
    assert failures == [], "\n".join(failures[:20])


def _run(operation: Any, base_url: str, headers: dict[str, str], tenant_id: str) -> list[str]:
    found: list[str] = []
    strategy = operation.as_strategy()
    if "{tenant_id}" in operation.path:  # half the cases about a real tenant
        strategy = st.one_of(strategy, operation.as_strategy(
            path_parameters={"tenant_id": tenant_id}))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def exercise(case: Any) -> None:
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS,
                                   timeout=20)
        except (Exception, FailureGroup) as exc:  # every operation's failures, then fail once
            failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            found.extend(f"{operation.method.upper()} {operation.path}: {failure}"[:2000]
                         for failure in failures)

    exercise()
    return found

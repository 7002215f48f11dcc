"""`GET /v1/kpis` bad input and tenancy, `GET /v1/kpis/commentary` (the LLM emulator behind
the gateway's OpenAI-compatible client: words, cache, fallback) and
`GET /v1/reports/weekly`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from api.context import CLOCK
from gateway.app import create_app
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from tests.api.conftest import Client, ClientFactory, MovableClock, Tenant, at, new_tenant
from tests.api.kpi_fixtures import Conv, play
from tests.api.test_kpis_month import EXPECTED, P4, _month
from tests.gateway.helpers import make_settings
from tests.pg_outage import DatabaseOutage
from tests.servers import TestServers


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"from": "2026-11-30", "to": "2026-11-01"}, "from"),
    ({"from": "2025-01-01", "to": "2026-02-05"}, "to"),  # 401 days
    ({"from": "1999-12-31", "to": "2000-01-02"}, "from"),
    ({"channel": "fax"}, "channel"),
    ({"direction": "sideways"}, "direction"),
    ({"granularity": "hour"}, "granularity"),
])
async def test_bad_kpi_parameters_are_422_naming_the_parameter(
        client: Client, tenant: Tenant, params: dict[str, str], field: str) -> None:
    for path in ("/v1/kpis", "/v1/kpis/commentary"):
        if path.endswith("commentary") and field in ("channel", "direction", "granularity"):
            continue
        response = await client.get(path, params=params, headers=tenant.auth)
        assert response.status == 422, await response.text()
        body = await response.json()
        assert (body["code"], body["field"]) == ("invalid_field", field)


async def test_400_days_is_the_limit_and_empty_filters_mean_all(
        client: Client, tenant: Tenant) -> None:
    response = await client.get("/v1/kpis", headers=tenant.auth, params={
        "from": "2025-01-01", "to": "2026-02-04", "channel": "", "direction": "",
        "granularity": "month"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert len(body["series"]) == 14 and body["totals"]["conversations"] == 0
    assert body["totals"]["success_rate"] is None and body["totals"]["customers"] == 0


async def test_bad_weeks_and_no_key(client: Client, tenant: Tenant) -> None:
    for week in ("2026-48", "2026-W54", "2025-W53", "1999-W01"):
        response = await client.get("/v1/reports/weekly", params={"week": week},
                                    headers=tenant.auth)
        assert response.status == 422, week
        assert (await response.json())["field"] == "week"
    for path in ("/v1/kpis", "/v1/kpis/commentary", "/v1/reports/weekly"):
        assert (await client.get(path)).status == 401


async def test_another_tenant_sees_none_of_the_conversations(
        client: Client, tenant: Tenant, pg_pool: asyncpg.Pool) -> None:
    await _month(pg_pool, tenant)
    other = await new_tenant(client, "Other")
    response = await client.get("/v1/kpis", params={"from": "2026-11-01", "to": "2026-11-30"},
                                headers=other.auth)
    body = await response.json()
    assert body["totals"]["conversations"] == 0 and body["dispositions"] == {}
    report = await client.get("/v1/reports/weekly", params={"week": "2026-W46"},
                              headers=other.auth)
    assert (await report.json())["top_conversations"] == []


# ---- the commentary, with the LLM emulator ----------------------------------------------

@pytest.fixture
async def llm() -> AsyncIterator[RunningEmulators]:
    running = await start_emulators(config=EmulatorConfig(ChatState(ChatTiming(0, 0))))
    yield running
    await running.stop()


@pytest.fixture
async def llm_client(aiohttp_client: ClientFactory, redis_url: str, database_url: str,
                     key_prefix: str, llm: RunningEmulators) -> Client:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false",
                             openai_base_url=llm.base_urls()["openai"], openai_api_key="k",
                             llm_model="gpt-commentary")
    app = create_app(settings)
    app[CLOCK] = MovableClock(at("2026-12-02 09:00"))
    return await aiohttp_client(app)


async def _commentary(client: Client, tenant: Tenant, start: str, end: str) -> dict[str, Any]:
    response = await client.get("/v1/kpis/commentary", params={"from": start, "to": end},
                                headers=tenant.auth)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_the_commentary_is_our_figures_in_the_llms_words_cached_per_period(
        llm_client: Client, llm: RunningEmulators, pg_pool: asyncpg.Pool) -> None:
    tenant = await new_tenant(llm_client)
    await _month(pg_pool, tenant)
    chat = llm.config.chat
    body = await _commentary(llm_client, tenant, "2026-11-01", "2026-11-30")
    assert (body["previous_from"], body["previous_to"]) == ("2026-10-02", "2026-10-31")
    # October (local) has O1 only: 1 conversation with a success.
    assert body["figures"]["conversations"] == {"current": 11, "previous": 1, "change": 10,
                                                "change_ratio": 10.0}
    assert body["figures"]["success_rate"]["current"] == EXPECTED["success_rate"]
    assert body["figures"]["success_rate"]["previous"] == 1.0
    assert not body["fallback"] and not body["cached"]
    assert len(chat.requests) == 1
    sent = chat.requests[0]
    assert sent["model"] == "gpt-commentary"
    prompt = sent["messages"][-1]["content"]
    assert "- conversations: 11 (previous 1)" in prompt and "36.4%" in prompt
    assert body["text"].startswith("This is the voicegw emulator. You said: Period 2026-11-01")
    again = await _commentary(llm_client, tenant, "2026-11-01", "2026-11-30")
    assert again["cached"] and again["text"] == body["text"] and len(chat.requests) == 1
    # New figures for the period: a new text.
    await play(pg_pool, tenant.id, [Conv("sms", "Z", at("2026-11-10 10:00"), 60, 900)])
    changed = await _commentary(llm_client, tenant, "2026-11-01", "2026-11-30")
    assert not changed["cached"] and changed["figures"]["conversations"]["current"] == 12
    assert len(chat.requests) == 2


async def test_a_failing_llm_gives_the_marked_fallback_text_and_no_cache(
        llm_client: Client, llm: RunningEmulators, pg_pool: asyncpg.Pool) -> None:
    tenant = await new_tenant(llm_client)
    await _month(pg_pool, tenant)
    chat = llm.config.chat
    chat.fail_next.extend([500, 500])  # the client retries once
    body = await _commentary(llm_client, tenant, "2026-11-01", "2026-11-30")
    assert body["fallback"] and not body["cached"]
    assert body["text"].startswith("Against the previous period: conversations 11 (+1000%)")
    assert "success rate 36.4% (-63.6 points)" in body["text"]
    recovered = await _commentary(llm_client, tenant, "2026-11-01", "2026-11-30")
    assert not recovered["fallback"] and not recovered["cached"]
    assert recovered["text"].startswith("This is the voicegw emulator.")


async def test_the_weekly_report_has_the_weeks_kpis_commentary_and_top_conversations(
        llm_client: Client, pg_pool: asyncpg.Pool) -> None:
    tenant = await new_tenant(llm_client)
    await _month(pg_pool, tenant)
    response = await llm_client.get("/v1/reports/weekly", params={"week": "2026-W46"},
                                    headers=tenant.auth)
    assert response.status == 200, await response.text()
    report = await response.json()
    # W46 = November 9-15 local: W2, S1, P4.
    assert (report["from"], report["to"]) == ("2026-11-09", "2026-11-15")
    totals = report["kpis"]["totals"]
    assert (totals["conversations"], totals["successes"], totals["customers"]) == (3, 3, 2)
    assert len(report["kpis"]["series"]) == 7
    assert report["commentary"]["previous_from"] == "2026-11-02"
    top = report["top_conversations"]
    assert [t["id"] for t in top][0] == str(P4.id)  # two successes
    assert [t["channel"] for t in top] == ["phone", "whatsapp", "sms"]
    assert top[0]["customer"] == "+90******E" and top[0]["credits"] == "6.000000"
    default = await llm_client.get("/v1/reports/weekly", headers=tenant.auth)
    assert (await default.json())["week"] == "2026-W48"  # clock: Wednesday 2026-12-02


async def test_postgres_down_answers_503_then_the_kpis_again(
        client: Client, tenant: Tenant, servers: TestServers, database_url: str) -> None:
    outage = DatabaseOutage(servers.postgres_url, database_url)
    paths = ("/v1/kpis", "/v1/kpis/commentary", "/v1/reports/weekly?week=2026-W48")
    try:
        await outage.start()
        for _ in range(2):  # terminated pooled connections first, then refused new ones
            for path in paths:
                response = await client.get(path, headers=tenant.auth)
                assert response.status == 503, path
                assert (await response.json())["code"] == "store_unavailable"
    finally:
        await outage.close()
    for path in paths:
        assert (await client.get(path, headers=tenant.auth)).status == 200

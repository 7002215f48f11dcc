"""The dashboard's figures in Chromium against a live gateway with real data: two weeks of
settled conversations (`benchmarks.dashboard_data`, written as the gateway writes them),
read back through GET /v1/kpis. The cards show what the rows say, computed here by hand
from the fixture, with the change against the week before; every chart paints."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

from api.context import PG_POOL
from benchmarks import dashboard_data
from benchmarks.dashboard_data import SeededConversation
from load.emulators.server import RunningEmulators
from tests.api.browser import browser_page, coloured_pixels
from tests.gateway.voice.conftest import Gateway, emulators, start_gateway  # noqa: F401

CHARTS = ["chart-conversations", "chart-success-rate", "chart-credits", "chart-handling",
          "chart-dispositions", "chart-channels"]


@pytest.fixture
async def gateway(redis_url: str, database_url: str, key_prefix: str,
                  emulators: RunningEmulators) -> AsyncIterator[Gateway]:  # noqa: F811
    running = await start_gateway(redis_url, database_url, key_prefix, emulators, 100_000)
    yield running
    await running.server.close()


def totals(rows: list[SeededConversation]) -> dict[str, float]:
    """The cards' KPIs by their definitions (DESIGN.md, docs/kpis.md)."""
    return {
        "conversations": len(rows),
        "success_rate": round(sum(1 for r in rows if r.successes) / len(rows), 4),
        "successes": sum(r.successes for r in rows),
        "handoffs": sum(1 for r in rows if r.handoff),
        "appointments": sum(r.outcomes.count("appointment_booked") for r in rows),
    }


async def percent(page: Page, rate: float) -> str:
    """A rate as the page prints it (JavaScript's own rounding of the same number)."""
    return str(await page.evaluate("r => (r * 100).toFixed(1) + '%'", rate))


async def seeded(gateway: Gateway) -> tuple[list[SeededConversation], dt.date, dt.date]:
    """Two weeks of conversations; the page shows the last seven days."""
    today = dt.datetime.now(dt.UTC).date()
    rows = dashboard_data.conversations(today, days=14, per_day=6, seed=11)
    await dashboard_data.insert(gateway.server.app[PG_POOL], uuid.UUID(gateway.tenant_id),
                                rows)
    return rows, today - dt.timedelta(days=6), today


async def sign_in(page: Page, gateway: Gateway, first: dt.date, last: dt.date) -> None:
    await page.goto(f"{gateway.base}/dashboard")
    await page.fill("#from", first.isoformat())
    await page.fill("#to", last.isoformat())
    await page.fill("#key", gateway.api_key)
    await page.click("#login button")


async def test_the_cards_show_the_rows_figures_and_every_chart_paints(
        gateway: Gateway) -> None:
    rows, first, today = await seeded(gateway)
    now = totals([r for r in rows if r.started_at.date() >= first])
    before = totals([r for r in rows if r.started_at.date() < first])

    async with browser_page("dashboard-kpis") as page:
        await sign_in(page, gateway, first, today)
        await page.locator("#card-successes", has_text=str(now["successes"])).wait_for()
        assert await page.text_content("#card-success-rate") == await percent(
            page, now["success_rate"])
        assert await page.text_content("#card-handoffs") == str(now["handoffs"])
        assert await page.text_content("#card-appointments") == str(now["appointments"])
        change = int(now["successes"] - before["successes"])
        assert (await page.text_content("#delta-successes") or "").startswith(f"{change:+d}")
        points = (now["success_rate"] - before["success_rate"]) * 100
        assert f"{points:+.1f} pts" in (await page.text_content("#delta-success-rate") or "")
        for chart in CHARTS:
            assert await coloured_pixels(page, chart) > 100, chart
        mix = await page.text_content("#channel-mix") or ""
        assert "phone" in mix and "whatsapp" in mix
        assert await page.text_content("#error") == ""

"""The dashboard's figures in Chromium against a live gateway with real data: two weeks of
settled conversations (`benchmarks.dashboard_data`, written as the gateway writes them),
read back through GET /v1/kpis and GET /v1/conversations, and a phone call placed during
the test through the emulators. The cards show what the rows say, computed here by hand
from the fixture, with the change against the week before; every chart paints; the
drawer shows a conversation's transcript, summary and charges; the call joins the recent
conversations when it settles, without a reload; the CSV export answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

from api.context import PG_POOL
from benchmarks import dashboard_data
from benchmarks.dashboard_data import SeededConversation
from load.caller import CallScript
from load.emulators.server import RunningEmulators
from tests.api.browser import browser_page, coloured_pixels
from tests.gateway.voice.conftest import Gateway, emulators, start_gateway  # noqa: F401
from tests.gateway.voice.test_calls import place_call

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


async def test_the_drawer_and_a_call_that_ends_during_the_test(gateway: Gateway) -> None:
    """The drawer shows a conversation's transcript (with what the caller heard of an
    interrupted turn), summary and charges; a call placed through the emulators joins
    the recent conversations when it settles, without a reload; the CSV export answers."""
    rows, first, today = await seeded(gateway)
    async with browser_page("dashboard-conversations") as page:
        await sign_in(page, gateway, first, today)
        shown = max((r for r in rows if r.transcript and r.channel == "phone"
                     and r.started_at.date() >= first), key=lambda r: r.started_at)
        await page.locator(f"#conversations tr[data-id='{shown.id}']").click()
        await page.locator("#drawer-transcript .turn").first.wait_for()
        assert await page.is_visible("#drawer")
        assert await page.text_content("#drawer-summary") == shown.summary
        turns = await page.locator("#drawer-transcript .turn").all_text_contents()
        assert len(turns) == len(shown.transcript)
        assert "Hello, Acme Dental" in turns[0]
        assert "interrupted" in turns[2] and "heard: Of course. Let me check" in turns[2]
        charges = await page.text_content("#drawer-charges") or ""
        assert f"{shown.micro_credits // 1_000_000:,}.00" in charges
        assert all(kind in charges for kind in shown.outcomes)
        await page.click("#drawer-close")
        assert not await page.is_visible("#drawer")

        await page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        result, _ = await place_call(gateway, CallScript(
            ["I would like to book an appointment tomorrow at 3pm"], max_call_s=30))
        assert result.ended_by == "caller"
        # Settled: a `conversations` event, and the list reloads itself with the call.
        row = page.locator("#conversations tr", has_text="+1555***4321")
        for _ in range(100):
            if await row.count():
                break
            await gateway.drain_outbox()  # in case the settlement waits for the ledger
            await asyncio.sleep(0.1)
        await row.first.wait_for()
        assert "phone" in (await row.first.text_content() or "")
        assert await page.evaluate("window.loadedOnce") is True

        async with page.expect_response(lambda r: "/v1/conversations.csv" in r.url) as got:
            await page.click("#csv")
        csv = await got.value
        assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
        assert await page.text_content("#error") == ""

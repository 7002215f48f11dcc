"""The dashboard in a real browser (Debian's chromium, Playwright) against a live gateway
whose vendors are the emulators: a phone call placed during the test shows up among the
live sessions and leaves again, and the balance follows, without a reload (GET /v1/live);
the charts draw; a wrong key says so. Screenshots of a failing run: tests/api/browser.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

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


async def test_a_call_placed_now_shows_up_live_and_the_balance_follows(
        gateway: Gateway) -> None:
    async with browser_page("dashboard-live-call") as page:
        await page.goto(f"{gateway.base}/dashboard")
        await page.fill("#key", gateway.api_key)
        await page.click("#login button")
        await page.locator("#available", has_text="100,000.00").wait_for()
        await page.locator("#live-status", has_text="live").wait_for()
        assert await page.text_content("#live-count") == "0"
        for chart in CHARTS:  # drawn (the canvases exist and have a size) before any data
            assert await coloured_pixels(page, chart) >= 0, chart
        await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

        call = asyncio.create_task(place_call(gateway, CallScript(
            ["I would like to book an appointment tomorrow at 3pm"],
            hang_up_when_done=False, hang_up_after_s=4.0, max_call_s=10)))
        try:
            row = page.locator("#live-sessions tr", has_text="phone")
            await row.wait_for(timeout=8000)
            assert "+1555***4321" in (await row.text_content() or "")
            assert await page.text_content("#live-count") == "1"
            assert await page.text_content("#reserved") != "0.00"  # its slice is held
            result, _ = await call
        finally:
            if not call.done():
                call.cancel()
        assert result.ended_by == "caller"
        await page.locator("#live-count", has_text="0").wait_for(timeout=8000)
        await page.locator("#reserved", has_text="0.00").wait_for()
        available = await page.text_content("#available") or ""
        assert available != "100,000.00"  # the call was billed...
        assert await page.evaluate("window.loadedOnce") is True  # ...and nothing reloaded

        await gateway.drain_outbox()  # the ledger has the call: its credits by meter
        await page.click("#filters button")
        await page.locator("#usage tr", has_text="call_seconds").wait_for()
        used = await page.locator("#usage tr", has_text="call_seconds").text_content() or ""
        assert " s" in used and "ms" not in used  # seconds, not raw milliseconds
        for _ in range(100):  # the bars of the meters that cost credits
            if await coloured_pixels(page, "chart-credits") > 200:
                break
            await asyncio.sleep(0.05)
        assert await coloured_pixels(page, "chart-credits") > 200
        assert await page.text_content("#error") == ""


async def test_a_wrong_key_says_so_and_opens_nothing(gateway: Gateway) -> None:
    async with browser_page("dashboard-wrong-key") as page:
        await page.goto(f"{gateway.base}/dashboard")
        await page.fill("#key", "vgw_not-a-key")
        await page.click("#login button")
        await page.locator("#error", has_text="Sign-in failed").wait_for()
        assert "API key is not valid" in (await page.text_content("#error") or "")
        assert await page.text_content("#live-status") == "offline"
        assert await page.text_content("#available") == "–"

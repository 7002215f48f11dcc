"""The tenant dashboard in a real browser (Debian's chromium driven by Playwright) against a
live gateway: log in with the API key, see the plan and the draft invoice, change the plan,
add a webhook and see its secret once, change the alert threshold, fetch a past invoice's
PDF."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import async_playwright

from tests.api.billing_env import create_plan
from tests.api.browser import ARGS, chromium
from tests.api.conftest import ADMIN, Client, MovableClock, at, new_tenant
from tests.metering.notify_env import Receiver


async def test_the_dashboard_shows_billing_webhooks_and_alerts(
        billing_client: Client, clock: MovableClock, receiver: Receiver) -> None:
    client = billing_client
    await create_plan(client)
    await create_plan(client, id="scale", name="Scale", monthly_fee="9900.00")
    tenant = await new_tenant(client)
    assert (await client.put(f"/admin/tenants/{tenant.id}/plan", headers=ADMIN,
                             json={"plan_id": "growth", "start": "2026-11-01"})).status == 200
    clock.at = at("2026-12-03 09:00")  # November ends; December's draft is running
    closed = await client.post("/admin/invoices/close", json={"period": "2026-11"},
                               headers=ADMIN)
    assert closed.status == 200
    url = str(client.make_url("/dashboard"))

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = await browser.new_page(accept_downloads=True)
            await page.goto(url)
            await page.fill("#key", tenant.api_key)
            await page.click("#login button")
            await page.locator("#plan", has_text="Growth").wait_for()
            assert "4950.00 TRY a month" in (await page.text_content("#plan") or "")
            await page.locator("#draft-total", has_text="4950.00").wait_for()
            assert await page.text_content("#draft-period") == "2026-12"

            await page.select_option("#plan-choice", "scale")
            await page.click("#plan-form button")
            await page.locator("#pending", has_text="Scale").wait_for()
            assert "2027-01-01" in (await page.text_content("#pending") or "")

            await page.fill("#webhook-url", receiver.url)
            await page.click("#webhook-form button")
            secret = page.locator("#secret-value")
            await secret.wait_for()
            assert (await secret.text_content() or "").startswith("whsec_")
            await page.locator("#webhooks tr", has_text=receiver.url).wait_for()

            await page.fill("#alert-threshold", "777")
            await page.fill("#alert-emails", "ops@example.com")
            await page.click("#alerts-form button")
            await page.locator("#alerts-saved", has_text="777").wait_for()
            alerts = await (await client.get("/v1/alerts", headers=tenant.auth)).json()
            assert alerts == {"low_balance_credits": 777, "emails": ["ops@example.com"]}

            row = page.locator("#invoices tr", has_text="ACME-2026-000001")
            async with page.expect_response(lambda r: r.url.endswith("/pdf")) as answer:
                await row.get_by_text("PDF").click()
            pdf = await answer.value
            assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
            assert await page.text_content("#error") == ""
            shot = os.environ.get("VOICEGW_DASHBOARD_SCREENSHOT")
            if shot:  # for a look at the layout during development
                await page.screenshot(path=Path(shot), full_page=True)
        finally:
            await browser.close()

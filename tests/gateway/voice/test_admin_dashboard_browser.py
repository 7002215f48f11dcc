"""The operator page in a real browser (Debian's chromium driven by Playwright) against a
live gateway with a real call metered: log in with the admin token, see the tenant on its
flat rate with the month's minutes, calls and cost at the reference price against what it
pays, open the review's task, preview the offer, send it to a real SMTP server, resolve."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from playwright.async_api import async_playwright

from gateway.dev_mail import MailCatcher
from tests.api.browser import ARGS, chromium
from tests.gateway.helpers import ADMIN_TOKEN
from tests.gateway.voice.tariff_env import (
    TariffGateway,
    month_of,
    next_month_start,
    tariff_gateway,
)
from tests.gateway.voice.test_tariff_reviews import minutes, money, postpaid, subscribe
from tests.metering.notify_env import mail_catcher

__all__ = ["mail_catcher", "tariff_gateway"]


@pytest.fixture
def smtp_url(mail_catcher: tuple[MailCatcher, str]) -> str:
    return mail_catcher[1]


async def test_the_operator_page_reviews_sends_and_resolves(
        tariff_gateway: TariffGateway, mail_catcher: tuple[MailCatcher, str]) -> None:
    gw, (catcher, _) = tariff_gateway, mail_catcher
    tenant = await gw.tenant("Hansen Dental", "+15550100041")
    seconds = await gw.billed_seconds(tenant, [await gw.phone(tenant)])
    period = month_of(gw.clock.at)
    await subscribe(gw, tenant.id, postpaid("flat-page", {
        "kind": "flat_rate", "monthly_price": "1.00", "reference_price_per_minute": "600.00",
        "tolerance_pct": "10"}))
    await gw.ok("PUT", f"/admin/tenants/{tenant.id}/billing-email",
                {"billing_email": "post@hansen.test"})
    gw.clock.at = next_month_start(gw.clock.at) + dt.timedelta(hours=1)
    offer = money(seconds * 1000)  # 10.00 a second, already a multiple of ten

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{gw.base}/admin/dashboard")
            await page.fill("#token", ADMIN_TOKEN)
            await page.fill("#month", period)
            await page.click("#login button")
            row = page.locator("#tariffs tr", has_text="Hansen Dental")
            await row.wait_for()
            cells = await row.locator("td").all_text_contents()
            assert cells == ["Hansen Dental", "flat_rate", minutes(seconds), "1", offer,
                             "1.00", "yes", offer]
            # the ended month's review opened the task
            await page.click("#filter-form button")
            task = page.locator("#tasks tr", has_text="Hansen Dental")
            await task.wait_for()
            assert "flat_rate_offer" in (await task.text_content() or "")
            await task.locator("button", has_text="Open").click()
            await page.locator("#task-status", has_text="open").wait_for()
            assert await page.input_value("#offer-to") == "post@hansen.test"
            await page.fill("#salutation", "Dear Ms Hansen")
            await page.click("#preview")
            text = page.locator("#offer-text")
            await text.wait_for()
            rendered = await text.text_content() or ""
            assert rendered.startswith("Dear Ms Hansen,")
            assert f"flat rate of {offer} per month" in rendered
            await page.click("#send")
            await page.locator("#task-status", has_text="offer_sent").wait_for()
            for _ in range(100):
                if catcher.mails:
                    break
                await asyncio.sleep(0.05)
            assert catcher.mails[0].recipients == ["post@hansen.test"]
            assert catcher.mails[0].body.strip() == rendered.strip()
            await page.select_option("#outcome", "closed")
            await page.fill("#note", "no answer wanted")
            await page.click("#resolve-form button")
            await page.locator("#task-status", has_text="closed").wait_for()
            assert await page.evaluate(
                "sessionStorage.getItem('voicegw-admin-token')") == ADMIN_TOKEN
        finally:
            await browser.close()
    tasks = (await gw.ok("GET", "/admin/tasks?status=closed"))["tasks"]
    assert [(t["tenant_id"], t["outcome_note"]) for t in tasks] == [
        (tenant.id, "no answer wanted")]

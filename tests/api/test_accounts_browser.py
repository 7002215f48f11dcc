"""Accounts in a real browser (Debian's chromium driven by Playwright) against a live
gateway, through the real pages: the owner's invite link -> set a password -> sign in ->
the dashboard; the owner invites an analyst on the users page, the analyst sets a password
from the mailed link, signs in and sees the KPI cards and charts but no billing (and the
page never asks for what the role may not read), signs out; the owner rotates the API key
on the keys page with a grace of seconds: the old key works during the grace and not
after; signing out ends the session (a reload shows the sign-in choice). An operator
viewer on /admin/dashboard reads a task and its figures but has no send or resolve
button; an operator has them."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import orjson
from playwright.async_api import Browser, Page, Response, async_playwright

from api.context import PG_POOL
from benchmarks import dashboard_data
from tests.api.accounts_env import PASSWORD, bearer, invite, join, new_tenant_with_owner
from tests.api.billing_env import create_plan
from tests.api.browser import ARGS, chromium, coloured_pixels
from tests.api.conftest import ADMIN, Client, Mailbox, MovableClock

CHARTS = ["chart-conversations", "chart-success-rate", "chart-credits", "chart-handling",
          "chart-dispositions", "chart-channels"]
BILLING = ["#balance-panel", "#billing", "#alerts-section", "#webhooks-section"]


class Watched:
    """A page and every answer it had that was refused (401/403), by path."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.refused: list[tuple[int, str]] = []
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        if response.status in (401, 403):
            self.refused.append((response.status, response.url.split("/", 3)[-1]))


async def new_page(browser: Browser) -> Watched:
    """A page in a context of its own (its own cookies and sessionStorage)."""
    return Watched(await (await browser.new_context(accept_downloads=True)).new_page())


async def set_password_and_sign_in(page: Page, base: str, token: str, email: str,
                                   lands_on: str) -> None:
    """The mailed link's page: choose a password, then sign in: the login page sends a
    tenant's user to /dashboard and an operator to /admin/dashboard."""
    await page.goto(f"{base}/login#invite={token}")
    await page.locator("#password-form").wait_for()
    assert "#invite" not in page.url  # the token left the address bar
    await page.fill("#new-password", PASSWORD)
    await page.click("#password-form button")
    await page.locator("#message", has_text="password is set").wait_for()
    assert await page.input_value("#email") == email
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button:not([type])")
    await page.wait_for_url(f"{base}{lands_on}")


async def hidden(page: Page, selector: str) -> bool:
    return bool(await page.locator(selector).evaluate("el => el.closest('[hidden]') !== null"))


async def sign_out_and_reload(page: Page) -> None:
    await page.click("#logout")
    await page.locator("#signin").wait_for()
    await page.reload()
    await page.locator("#signin").wait_for()
    assert await page.get_attribute("#signin a", "href") in (
        "/login?next=/dashboard", "/login?next=/admin/dashboard")


async def test_invite_analyst_without_billing_rotation_grace_and_sign_out(
        accounts_client: Client, mailbox: Mailbox, clock: MovableClock) -> None:
    client = accounts_client
    clock.at = dt.datetime.now(dt.UTC)  # the page's date filters are the browser's days
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    today = clock.at.date()
    await dashboard_data.insert(client.app[PG_POOL], uuid.UUID(tenant["id"]),
                                dashboard_data.conversations(today, days=14, per_day=6,
                                                             seed=11))
    old_key = {"Authorization": f"Bearer {tenant['api_key']}"}
    base = str(client.make_url("")).rstrip("/")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            owner = await new_page(browser)
            await set_password_and_sign_in(owner.page, base,
                                           await mailbox.link("owner@acme.test"),
                                           "owner@acme.test", "/dashboard")
            page = owner.page
            cookie = next(c for c in await page.context.cookies()
                          if c["name"] == "vgw_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            await page.locator("#who", has_text="owner@acme.test (owner)").wait_for()
            await page.locator("#live-status", has_text="live").wait_for()
            for part in BILLING:  # an owner sees the money, without pasting a key
                assert not await hidden(page, part), part
            await page.locator("#available", has_text=".").wait_for()
            await page.click("#users-link")

            await page.wait_for_url(f"{base}/users")
            await page.fill("#invite-email", "ana@acme.test")
            await page.select_option("#invite-role", "analyst")
            await page.click("#invite-form button")
            await page.locator("#users tr", has_text="ana@acme.test").wait_for()

            analyst = await new_page(browser)
            await set_password_and_sign_in(analyst.page, base,
                                           await mailbox.link("ana@acme.test"),
                                           "ana@acme.test", "/dashboard")
            page = analyst.page
            await page.locator("#who", has_text="ana@acme.test (analyst)").wait_for()
            await page.locator("#card-success-rate", has_text=re.compile(r"%$")).wait_for()
            await page.locator("#conversations tr.clickable").first.wait_for()
            await page.locator("#live-status", has_text="live").wait_for()  # sessions only
            for chart in CHARTS:
                assert await coloured_pixels(page, chart) > 100, chart
            for part in BILLING:
                assert await hidden(page, part), part
            assert await hidden(page, "#users-link") and await hidden(page, "#keys-link")
            assert await page.text_content("#available") == "–"  # never read
            assert await page.text_content("#error") == ""
            # The hidden parts were never asked for: no refusal, no 403 in the console.
            assert [r for r in analyst.refused if not r[1].startswith("auth/session")] == []
            await sign_out_and_reload(page)

            page = owner.page
            await page.goto(f"{base}/dashboard")
            await page.click("#keys-link")
            await page.wait_for_url(f"{base}/api-keys")
            row = page.locator("#keys tr", has_text="default")
            await row.wait_for()
            await page.fill("#grace", "30")
            await page.select_option("#grace-unit", "1")  # seconds
            await row.locator("button.rotate").click()
            await page.locator("#message", has_text="rotated").wait_for()
            new_key = {"Authorization":
                       f"Bearer {await page.text_content('#key-secret')}"}
            assert (await client.get("/v1/balance", headers=old_key)).status == 200
            assert (await client.get("/v1/balance", headers=new_key)).status == 200
            clock.at += dt.timedelta(seconds=29)
            assert (await client.get("/v1/balance", headers=old_key)).status == 200
            clock.at += dt.timedelta(seconds=2)
            assert (await client.get("/v1/balance", headers=old_key)).status == 401
            assert (await client.get("/v1/balance", headers=new_key)).status == 200

            await page.goto(f"{base}/dashboard")
            await page.locator("#who", has_text="owner").wait_for()
            session = {"Cookie": f"vgw_session={cookie['value']}"}
            assert (await client.get("/v1/usage", headers=session)).status == 200
            await sign_out_and_reload(page)
            assert await hidden(page, "#content")
            assert (await client.get("/v1/usage", headers=session)).status == 401
            assert [r for r in owner.refused if not r[1].startswith("auth/session")] == []
        finally:
            await browser.close()


async def _task(client: Client, tenant_id: str) -> str:
    """A tariff review task as the monthly review opens it (tests/gateway/voice cover
    the review itself)."""
    plan = await create_plan(client)
    task_id = uuid.uuid4()
    figures = {"minutes": "90.0", "calls": 12, "paid": "1.00", "monthly_price": "1.00",
               "reference_price_per_minute": "10.00", "cost_at_reference": "900.00",
               "tolerance_pct": "10"}
    await client.app[PG_POOL].execute(
        """INSERT INTO tariff_tasks (id, tenant_id, kind, tariff, period, plan_id,
               plan_version, currency, figures, offer, created_at)
           VALUES ($1, $2, 'flat_rate_offer', 'flat_rate', '2026-10-01', $3, $4, 'TRY',
                   $5::jsonb, $6::jsonb, now())""",
        task_id, uuid.UUID(tenant_id), plan["id"], plan["version"],
        orjson.dumps(figures).decode(),
        orjson.dumps({"tariff": "flat_rate", "price": "900.00"}).decode())
    return str(task_id)


async def _operator(browser: Browser, client: Client, mailbox: Mailbox, base: str,
                    email: str, role: str) -> Watched:
    invited = await client.post("/admin/operators", headers=ADMIN,
                                json={"email": email, "role": role})
    assert invited.status == 201, await invited.text()
    person = await new_page(browser)
    await set_password_and_sign_in(person.page, base, await mailbox.link(email), email,
                                   "/admin/dashboard")
    await person.page.locator("#who", has_text=f"{email} ({role})").wait_for()
    return person


async def _open_task(page: Page, task_id: str) -> Any:
    await page.locator(f"#tasks tr[data-task='{task_id}'] button").click()
    await page.locator("#task-status", has_text="open").wait_for()
    return await page.text_content("#task-figures")


async def test_an_operator_viewer_reads_tasks_but_cannot_send_or_resolve(
        accounts_client: Client, mailbox: Mailbox, clock: MovableClock) -> None:
    client = accounts_client
    clock.at = dt.datetime.now(dt.UTC)  # the page reviews the browser's month
    tenant = await new_tenant_with_owner(client, "owner@hansen.test")
    task_id = await _task(client, tenant["id"])
    base = str(client.make_url("")).rstrip("/")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            viewer = await _operator(browser, client, mailbox, base, "vic@ops.test", "viewer")
            page = viewer.page
            figures = await _open_task(page, task_id)
            assert "cost_at_reference" in figures and "900.00" in figures
            assert await hidden(page, "#send") and await hidden(page, "#resolve-form")
            assert await hidden(page, "#review-section")  # the review writes: operators
            assert not await hidden(page, "#preview")     # rendering sends nothing
            await page.click("#preview")
            await page.locator("#offer-text").wait_for()
            assert await page.text_content("#error") == ""
            assert [r for r in viewer.refused if not r[1].startswith("auth/session")] == []
            await sign_out_and_reload(page)

            operator = await _operator(browser, client, mailbox, base, "ola@ops.test",
                                       "operator")
            await _open_task(operator.page, task_id)
            assert not await hidden(operator.page, "#send")
            assert not await hidden(operator.page, "#resolve-form")
            assert not await hidden(operator.page, "#review-section")
        finally:
            await browser.close()


async def test_billing_sees_money_but_no_webhooks_and_a_read_key_no_forms(
        accounts_client: Client, mailbox: Mailbox, clock: MovableClock) -> None:
    """A billing user sees the balance, plan, invoices and alerts, but no webhooks and no
    links to the users and keys pages; a pasted read key sees the money and webhooks
    without any form that changes them. Neither page meets a refusal."""
    client = accounts_client
    clock.at = dt.datetime.now(dt.UTC)
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    full = bearer(tenant["api_key"])
    await invite(client, full, "bill@acme.test", "billing")
    billing = await join(client, mailbox, "bill@acme.test")
    made = await client.post("/v1/api-keys", headers=full,
                             json={"name": "reporting", "scope": "read"})
    assert made.status == 201, await made.text()
    read_key = (await made.json())["key"]
    base = str(client.make_url("")).rstrip("/")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            person = await new_page(browser)
            page = person.page
            await page.context.add_cookies([{"name": "vgw_session", "value": billing.session,
                                             "url": base}])
            await page.goto(f"{base}/dashboard")
            await page.locator("#who", has_text="bill@acme.test (billing)").wait_for()
            await page.locator("#live-status", has_text="live").wait_for()
            await page.locator("#available", has_text=".").wait_for()
            await page.locator("#plan", has_text="prepaid").wait_for()
            for part in ("#balance-panel", "#billing", "#alerts-section", "#plan-form"):
                assert not await hidden(page, part), part
            for part in ("#webhooks-section", "#users-link", "#keys-link"):
                assert await hidden(page, part), part
            assert await page.text_content("#error") == ""
            assert [r for r in person.refused if not r[1].startswith("auth/session")] == []

            scripted = await new_page(browser)
            page = scripted.page
            await page.goto(f"{base}/dashboard")
            await page.locator("#signin").wait_for()
            await page.fill("#key", read_key)
            await page.click("#login button")
            await page.locator("#who", has_text="reporting (read)").wait_for()
            await page.locator("#available", has_text=".").wait_for()
            await page.locator("#plan", has_text="prepaid").wait_for()
            for part in ("#billing", "#webhooks-section", "#alerts-section"):
                assert not await hidden(page, part), part
            for part in ("#plan-form", "#webhook-form", "#users-link", "#keys-link"):
                assert await hidden(page, part), part
            assert await page.is_disabled("#alerts-form button")
            assert await page.text_content("#error") == ""
            assert [r for r in scripted.refused if not r[1].startswith("auth/session")] == []
            await sign_out_and_reload(page)  # the key is forgotten
            assert await page.evaluate("sessionStorage.getItem('voicegw.api_key')") is None
        finally:
            await browser.close()

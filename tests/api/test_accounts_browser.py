"""Accounts in a real browser (Debian's chromium driven by Playwright) against a live
gateway: the owner's invite -> set a password -> sign in; the owner invites an analyst,
who signs in and reads usage but no billing; the owner rotates the API key on the keys
page: the old key works during the grace period and not after; sign out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.async_api import Page, async_playwright

from tests.api.accounts_env import PASSWORD, new_tenant_with_owner
from tests.api.browser import ARGS, chromium
from tests.api.conftest import Client, Mailbox, MovableClock


async def _set_password_and_sign_in(page: Page, base: str, token: str, email: str) -> None:
    await page.goto(f"{base}/login#invite={token}")
    await page.locator("#password-form").wait_for()
    assert "#invite" not in page.url  # the token left the address bar
    await page.fill("#new-password", PASSWORD)
    await page.click("#password-form button")
    await page.locator("#message", has_text="password is set").wait_for()
    assert await page.input_value("#email") == email
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit], #login-form button:not([type])")
    await page.locator("#signed-in").wait_for()


async def _api(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        """async ([method, path, body]) => {
             const r = await VoicegwAuth.api(method, path, body === null ? undefined : body);
             return {status: r.status, body: r.body};
           }""", [method, path, body])
    return result


async def test_invite_sign_in_roles_rotation_and_sign_out_in_a_browser(
        accounts_client: Client, mailbox: Mailbox, clock: MovableClock) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    old_key = {"Authorization": f"Bearer {tenant['api_key']}"}
    base = str(client.make_url("")).rstrip("/")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            owner = await (await browser.new_context()).new_page()
            await _set_password_and_sign_in(owner, base, await mailbox.link("owner@acme.test"),
                                            "owner@acme.test")
            assert await owner.text_content("#role") == "owner"
            cookie = next(c for c in await owner.context.cookies()
                          if c["name"] == "vgw_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            await owner.goto(f"{base}/users")
            await owner.fill("#invite-email", "ana@acme.test")
            await owner.select_option("#invite-role", "analyst")
            await owner.click("#invite-form button")
            await owner.locator("#users tr", has_text="ana@acme.test").wait_for()

            analyst = await (await browser.new_context()).new_page()
            await _set_password_and_sign_in(analyst, base,
                                            await mailbox.link("ana@acme.test"),
                                            "ana@acme.test")
            assert await analyst.text_content("#role") == "analyst"
            links = await analyst.locator("#links a").all_text_contents()
            assert "Dashboard" in links and "Users" not in links and "API keys" not in links
            usage = await _api(analyst, "GET", "/v1/usage?group_by=meter")
            assert usage["status"] == 200
            for method, path, body in (("GET", "/v1/balance", None),
                                       ("GET", "/v1/invoices", None),
                                       ("PUT", "/v1/plan", {"plan_id": "growth"})):
                refused = await _api(analyst, method, path, body)
                assert (refused["status"], refused["body"]["code"]) == (403, "role_forbidden")

            await owner.goto(f"{base}/api-keys")
            row = owner.locator("#keys tr", has_text="default")
            await row.wait_for()
            await owner.fill("#grace-hours", "1")
            await row.locator("button.rotate").click()
            secret = owner.locator("#key-secret")
            await secret.wait_for()
            new_key = {"Authorization": f"Bearer {await secret.text_content()}"}
            await owner.locator("#message", has_text="rotated").wait_for()

            assert (await client.get("/v1/balance", headers=old_key)).status == 200
            assert (await client.get("/v1/balance", headers=new_key)).status == 200
            clock.at += dt.timedelta(minutes=61)
            assert (await client.get("/v1/balance", headers=old_key)).status == 401
            assert (await client.get("/v1/balance", headers=new_key)).status == 200

            await owner.goto(f"{base}/login")
            await owner.locator("#signed-in").wait_for()
            await owner.click("#logout")
            await owner.locator("#login-form").wait_for()
            after = await _api(owner, "GET", "/v1/usage")
            assert after["status"] == 401
        finally:
            await browser.close()

"""`python -m benchmarks.screenshot` (`make screenshot`): docs/dashboard.png, the tenant
dashboard with data, as README shows it.

A gateway on a scratch database (the local servers, or the embedded ones), a tenant on
seed 000's plan with two weeks of conversations (`benchmarks.dashboard_data`) and a call
in progress, the page in Debian's Chromium (`VOICEGW_CHROMIUM` names another binary).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import async_playwright

from api.context import CREDIT_STORE, PG_POOL
from benchmarks import dashboard_data
from benchmarks.__main__ import _drop_database, _scratch_database
from benchmarks.common import drop_redis_prefix
from gateway.app import create_app
from gateway.config import load_settings
from gateway.embedded import LocalServers

ADMIN_TOKEN = "screenshot-admin-token"  # noqa: S105 - a throwaway gateway on loopback
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PLAN = {"id": "growth", "name": "Growth", "currency": "TRY", "setup_fee": "0.00",
        "monthly_fee": "4950.00", "success_fee": "12.00", "included_credits": 150000,
        "credit_rollover": True}


def _settings(redis_url: str, database_url: str, prefix: str) -> Any:
    return load_settings({
        "VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
        "VOICEGW_PUBLIC_URL": "https://gw.example", "VOICEGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "VOICEGW_TWILIO_AUTH_TOKEN": "unused", "VOICEGW_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "VOICEGW_REDIS_PREFIX": prefix, "VOICEGW_MIGRATE_ON_START": "false",
        "VOICEGW_RUN_SINK": "false", "VOICEGW_INVOICE_ISSUER": "ACME",
        # Nothing leaves the machine: no LLM answers, so the commentary is the one made
        # from the figures alone.
        "VOICEGW_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})


async def _tenant(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    created = await (await http.post(f"{base}/admin/tenants", json={"name": "Acme Dental"},
                                     headers=ADMIN)).json()
    tenant, key = created["id"], created["api_key"]
    await http.post(f"{base}/admin/plans", json=PLAN, headers=ADMIN)
    start = dt.date.today().replace(day=1).isoformat()
    await http.put(f"{base}/admin/tenants/{tenant}/plan", json={"plan_id": "growth",
                                                                 "start": start},
                   headers=ADMIN)
    await http.post(f"{base}/v1/topups", json={"credits": 50_000}, headers={
        "Authorization": f"Bearer {key}", "Idempotency-Key": "screenshot"})
    return tenant, key


async def _shoot(base: str, key: str, output: Path, drawer: Path | None) -> None:
    binary = os.environ.get("VOICEGW_CHROMIUM") or shutil.which("chromium")
    if binary is None:
        raise SystemExit("the screenshot needs Chromium: apt-get install chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=binary, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900},
                                          device_scale_factor=1)
            await page.goto(f"{base}/dashboard")
            await page.fill("#key", key)
            await page.click("#login button")
            await page.locator("#live-sessions tr", has_text="phone").wait_for()
            listed = await page.evaluate(  # a gateway without the conversations API
                "k => fetch('/v1/conversations', {headers: {Authorization: 'Bearer ' + k}})"
                ".then(r => r.ok)", key)
            if listed:
                await page.locator("#conversations tr.clickable").first.wait_for()
            await page.wait_for_timeout(500)
            # No key in the picture: once it is taken, its field is emptied and hidden.
            await page.screenshot(path=output, full_page=True,
                                  clip={"x": 0, "y": 0, "width": 1280, "height": 2300})
            if drawer is not None and listed:
                await page.locator("#conversations tr.clickable", has_text="phone").first.click()
                await page.locator("#drawer-transcript .turn").first.wait_for()
                await page.screenshot(path=drawer)
        finally:
            await browser.close()


async def _main(output: Path, drawer: Path | None) -> None:
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    prefix = f"vgwshot:{uuid.uuid4().hex[:8]}:"
    try:
        name, database_url = await _scratch_database(servers.postgres_url)
        runner = web.AppRunner(create_app(_settings(servers.redis_url, database_url, prefix)))
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            app = runner.app
            async with aiohttp.ClientSession() as http:
                tenant, key = await _tenant(http, base)
            now = dt.datetime.now(dt.UTC)  # 60 days: the cards compare with the 30 before
            rows = dashboard_data.conversations(now.date(), days=60, until=now)
            await dashboard_data.insert(app[PG_POOL], uuid.UUID(tenant), rows)
            await app[CREDIT_STORE].reserve(  # a call in progress for the live panel
                tenant, "call:CAlive", channel="phone", requested=600_000_000,
                min_grant=1, validity_ms=600_000, overdraft_limit=0,
                now_ms=int(time.time() * 1000) - 95_000, meta={"caller": "+4917***1017"})
            await _shoot(base, key, output, drawer)
        finally:
            await runner.cleanup()
            await _drop_database(servers.postgres_url, name)
            await drop_redis_prefix(servers.redis_url, prefix)
    finally:
        servers.close()



def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshot", description=__doc__)
    parser.add_argument("--output", default="docs/dashboard.png")
    parser.add_argument("--drawer", default="docs/dashboard-conversation.png",
                        help="a second picture with a conversation's drawer open ('' for none)")
    args = parser.parse_args()
    asyncio.run(_main(Path(args.output), Path(args.drawer) if args.drawer else None))
    print(f"wrote {args.output}" + (f" and {args.drawer}" if args.drawer
                                    and Path(args.drawer).exists() else ""))


if __name__ == "__main__":
    main()

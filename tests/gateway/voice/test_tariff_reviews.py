"""Tariff reviews end to end (seed 004): real calls metered through the gateway, postpaid
plans with a flat rate, a price per call or a cost cap, the monthly review flagging at the
exact boundary (equal to the price x (1 + tolerance) is not flagged), the offer e-mailed to
a real SMTP server, the follow-up 7 days later, and the accepted tariff billed from the
next cycle.

Prices are chosen from the calls' own billed seconds so every figure is checkable: a
reference price of 600.00 a minute makes each billed second cost exactly 10.00."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest

from api.context import PG_POOL
from gateway.dev_mail import MailCatcher
from metering.billing.reviews import review_ended_month
from tests.gateway.voice.tariff_env import (
    TariffGateway,
    month_of,
    next_month_start,
    tariff_gateway,
)
from tests.metering.notify_env import mail_catcher

__all__ = ["mail_catcher", "tariff_gateway"]  # fixtures used here


@pytest.fixture
def smtp_url(mail_catcher: tuple[MailCatcher, str]) -> str:
    return mail_catcher[1]


def postpaid(plan_id: str, tariff: dict[str, Any]) -> dict[str, Any]:
    return {"id": plan_id, "name": plan_id.replace("-", " ").title(), "currency": "NOK",
            "setup_fee": "0.00", "monthly_fee": "0.00", "success_fee": "0.00",
            "billing": "postpaid", "credit_limit": 2000, "tariff": tariff}


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minutes(seconds: int) -> str:
    hundredths = (seconds * 100 * 2 + 60) // 120  # seconds / 60, 2 decimals, half-up
    return money(hundredths)


async def subscribe(gw: TariffGateway, tenant_id: str, plan: dict[str, Any]) -> None:
    await gw.ok("POST", "/admin/plans", plan)
    start = gw.clock.at.date().replace(day=1).isoformat()
    await gw.ok("PUT", f"/admin/tenants/{tenant_id}/plan", {"plan_id": plan["id"],
                                                             "start": start})


async def wait_for_mail(catcher: MailCatcher, count: int) -> None:
    for _ in range(100):
        if len(catcher.mails) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} mails expected, {len(catcher.mails)} arrived")


async def test_flat_rate_boundary_offer_mail_follow_up_and_acceptance(
        tariff_gateway: TariffGateway, mail_catcher: tuple[MailCatcher, str]) -> None:
    gw, (catcher, _) = tariff_gateway, mail_catcher
    fine = await gw.tenant("Fine Dental", "+15550100011")
    over = await gw.tenant("Long Talkers", "+15550100012")
    calls = await asyncio.gather(gw.phone(fine), gw.phone(over), gw.phone(over))
    fine_s = await gw.billed_seconds(fine, [calls[0]])
    over_s = await gw.billed_seconds(over, list(calls[1:]))
    period = month_of(gw.clock.at)
    # 600.00 a minute: cost = billed seconds x 10.00. Tolerance 25 %: the limit is
    # price x 1.25, so a price of 0.8 x cost sits exactly on it (not flagged), and one
    # minor unit less is over it (flagged).
    await subscribe(gw, fine.id, postpaid("flat-fine", {
        "kind": "flat_rate", "monthly_price": money(fine_s * 800),
        "reference_price_per_minute": "600.00", "tolerance_pct": "25"}))
    over_price = over_s * 800 - 1
    await subscribe(gw, over.id, postpaid("flat-over", {
        "kind": "flat_rate", "monthly_price": money(over_price),
        "reference_price_per_minute": "600.00", "tolerance_pct": "25"}))

    early = await gw.ok("POST", "/admin/tariff-reviews", {"period": period})
    by_tenant = {r["tenant_id"]: r for r in early["results"]}
    assert set(by_tenant) == {fine.id, over.id}
    assert not by_tenant[fine.id]["flagged"] and by_tenant[over.id]["flagged"]
    assert all(r["preliminary"] and r["task_id"] is None for r in early["results"])
    assert (await gw.ok("GET", "/admin/tasks"))["tasks"] == []

    gw.clock.at = next_month_start(gw.clock.at) + dt.timedelta(hours=1)
    # Two requests and a CLI process (whose own clock still reads the running month: a
    # preliminary review told to open tasks) race for the same tenant and period.
    first, second, cli = await asyncio.gather(
        gw.ok("POST", "/admin/tariff-reviews", {"period": period}),
        gw.ok("POST", "/admin/tariff-reviews", {"period": period}),
        gw.cli("review", "--period", period, "--open-tasks"))
    result = {r["tenant_id"]: r for r in first["results"]}[over.id]
    assert not result["preliminary"] and result["flagged"]
    for other in (second, cli):
        assert {r["tenant_id"]: r for r in other["results"]}[over.id]["task_id"] == result[
            "task_id"]
    assert {r["tenant_id"]: r for r in first["results"]}[fine.id]["task_id"] is None
    figures = result["figures"]
    assert (figures["calls"], figures["seconds"], figures["minutes"]) == (
        2, over_s, minutes(over_s))
    assert figures["cost_at_reference"] == money(over_s * 1000)
    offer_price = money((over_s * 1000 // 1000) * 1000)  # rounded down to the nearest ten
    assert result["offer"]["price"] == offer_price
    tasks = (await gw.ok("GET", "/admin/tasks"))["tasks"]
    assert [(t["kind"], t["status"], t["tenant_id"]) for t in tasks] == [
        ("flat_rate_offer", "open", over.id)]
    task_id = result["task_id"]

    await gw.ok("PUT", f"/admin/tenants/{over.id}/billing-email",
                {"billing_email": "ap@longtalkers.test"})
    sent = await gw.ok("POST", f"/admin/tasks/{task_id}/offer",
                       {"salutation": "Dear Ms Hansen"})
    assert sent["status"] == "offer_sent" and sent["offer_to"] == "ap@longtalkers.test"
    text = sent["offer_text"]
    for value in (f"existing flat rate of {money(over_price)}/month", f"In the month {period}",
                  f"total duration of {minutes(over_s)} minutes",
                  "price of 600.00 per call minute", f"flat rate of {offer_price} per month",
                  f"{minutes(over_s)} call minutes * 600.00 per call minute"):
        assert value in text, value
    assert text.startswith("Dear Ms Hansen,\n")
    await wait_for_mail(catcher, 1)
    mail = catcher.mails[0]
    assert mail.recipients == ["ap@longtalkers.test"] and mail.body.strip() == text.strip()
    status, problem = await gw.call("POST", f"/admin/tasks/{task_id}/offer",
                                    {"salutation": "Dear Ms Hansen"})
    assert (status, problem["code"]) == (409, "offer_already_sent")

    offer_day = gw.clock.at.date().isoformat()
    six_days = (gw.clock.at + dt.timedelta(days=6, hours=23)).isoformat()
    assert (await gw.cli("followups", "--as-of", six_days))["opened"] == []
    seven = await gw.cli("followups", "--as-of",
                         (gw.clock.at + dt.timedelta(days=7)).isoformat())
    assert [(t["kind"], t["follows_task_id"]) for t in seven["opened"]] == [
        ("flat_rate_follow_up", task_id)]
    again = await gw.cli("followups", "--as-of",
                         (gw.clock.at + dt.timedelta(days=8)).isoformat())
    assert again["opened"] == []
    assert (await gw.ok("GET", f"/admin/tasks/{task_id}"))["status"] == "follow_up"
    follow_up = seven["opened"][0]["id"]
    preview = await gw.ok("POST", f"/admin/tasks/{follow_up}/preview",
                          {"salutation": "Dear Ms Hansen"})
    assert preview["text"].startswith("Dear Ms Hansen,\n")
    assert f"our e-mail of {offer_day}" in preview["text"]
    assert f"Our message of {offer_day}:" in preview["text"]
    assert f"flat rate of {offer_price} per month" in preview["text"]

    gw.clock.at += dt.timedelta(days=8)
    done = await gw.ok("POST", f"/admin/tasks/{follow_up}/resolve",
                       {"outcome": "accepted", "note": "agreed on the phone"})
    assert done["status"] == "accepted" and done["applied_plan_id"]
    assert (await gw.ok("GET", f"/admin/tasks/{task_id}"))["status"] == "accepted"
    plan = await gw.ok("GET", "/v1/plan", headers=over.auth)
    assert plan["current"]["tariff"]["monthly_price"] == money(over_price)
    assert plan["pending"]["tariff"]["monthly_price"] == offer_price
    gw.clock.at = next_month_start(gw.clock.at) + dt.timedelta(hours=1)
    draft = await gw.ok("GET", "/v1/invoices/upcoming", headers=over.auth)
    assert [(line["kind"], line["amount"]) for line in draft["lines"]] == [
        ("flat_rate", offer_price)]
    # the accepted task's pair is resolved: no follow-up later
    assert (await gw.cli("followups", "--as-of",
                         (gw.clock.at + dt.timedelta(days=30)).isoformat()))["opened"] == []


async def test_per_call_smtp_down_leaves_the_task_open_and_a_declined_offer_has_no_follow_up(
        tariff_gateway: TariffGateway, mail_catcher: tuple[MailCatcher, str]) -> None:
    gw, (catcher, smtp_url) = tariff_gateway, mail_catcher
    fine = await gw.tenant("One Call", "+15550100021")
    over = await gw.tenant("Two Calls", "+15550100022")
    calls = await asyncio.gather(gw.phone(fine), gw.phone(over), gw.phone(over))
    fine_s = await gw.billed_seconds(fine, [calls[0]])
    over_s = await gw.billed_seconds(over, list(calls[1:]))
    period = month_of(gw.clock.at)
    # 600.00 a minute: a call's cost is its seconds x 10.00; the limit is price x 1.25.
    await subscribe(gw, fine.id, postpaid("call-fine", {
        "kind": "per_call", "price_per_call": money(fine_s * 800),
        "reference_price_per_minute": "600.00", "tolerance_pct": "25"}))
    price = over_s * 400 - 1  # 2 calls: cost per call = over_s x 5.00
    await subscribe(gw, over.id, postpaid("call-over", {
        "kind": "per_call", "price_per_call": money(price),
        "reference_price_per_minute": "600.00", "tolerance_pct": "25"}))

    code, _, err = await gw.run_cli("review", "--period", "2999-01")
    assert code == 2 and "period" in err and "future" in err
    code, _, err = await gw.run_cli("followups", "--as-of", "2027-01-09T00:00:00")
    assert code == 2 and "offset" in err
    # An operator acting before the month ends opens the task from the CLI...
    early = await gw.cli("review", "--period", period, "--open-tasks")
    by_tenant = {r["tenant_id"]: r for r in early["results"]}
    assert by_tenant[over.id]["preliminary"] and by_tenant[over.id]["task_id"]
    assert not by_tenant[fine.id]["flagged"] and by_tenant[fine.id]["task_id"] is None
    # ...and the review after the month's end finds it: one task per tenant and period.
    gw.clock.at = next_month_start(gw.clock.at) + dt.timedelta(minutes=5)
    final = {r["tenant_id"]: r for r in (await gw.ok(
        "POST", "/admin/tariff-reviews", {"period": period}))["results"]}
    assert final[over.id]["task_id"] == by_tenant[over.id]["task_id"]
    assert not final[over.id]["preliminary"]
    offer_price = money(over_s * 500)
    assert final[over.id]["offer"]["price"] == offer_price
    assert (final[over.id]["figures"]["calls"], final[over.id]["figures"]["minutes"]) == (
        2, minutes(over_s))
    task_id = final[over.id]["task_id"]

    await catcher.stop()  # the SMTP server is down
    status, problem = await gw.call("POST", f"/admin/tasks/{task_id}/offer",
                                    {"salutation": "Dear Mr Berg", "to": "berg@two.test"})
    assert (status, problem["code"]) == (503, "mail_failed")
    task = await gw.ok("GET", f"/admin/tasks/{task_id}")
    assert task["status"] == "open" and task["last_error"] and task["offer_sent_at"] is None
    pool = gw.server.app[PG_POOL]
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox") == 0
    port = int(smtp_url.rsplit(":", 1)[1])
    await catcher.start("127.0.0.1", port)  # back up: the same send now goes
    sent = await gw.ok("POST", f"/admin/tasks/{task_id}/offer",
                       {"salutation": "Dear Mr Berg", "to": "berg@two.test"})
    assert sent["status"] == "offer_sent" and sent["last_error"] is None
    await wait_for_mail(catcher, 1)
    body = catcher.mails[0].body
    for value in ("Dear Mr Berg,", f"fixed price of {money(price)} per handled call",
                  f"In the month {period} we had 2 inbound calls with a total duration of "
                  f"{minutes(over_s)} minutes", "a price of 600.00 per call minute",
                  f"fixed price of {offer_price} per handled call",
                  f"{minutes(over_s)} call minutes / 2 calls * 600.00 per call minute"):
        assert value in body, value
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE status = 'sent'") == 1

    declined = await gw.ok("POST", f"/admin/tasks/{task_id}/resolve", {"outcome": "declined"})
    assert declined["status"] == "declined" and declined["applied_plan_id"] is None
    status, problem = await gw.call("POST", f"/admin/tasks/{task_id}/resolve",
                                    {"outcome": "accepted"})
    assert (status, problem["code"]) == (409, "task_resolved")
    status, problem = await gw.call("POST", f"/admin/tasks/{task_id}/offer",
                                    {"salutation": "Dear Mr Berg"})
    assert (status, problem["code"]) == (409, "task_resolved")
    later = (gw.clock.at + dt.timedelta(days=7, minutes=1)).isoformat()
    assert (await gw.cli("followups", "--as-of", later))["opened"] == []
    plan = await gw.ok("GET", "/v1/plan", headers=over.auth)
    assert plan["pending"] is None  # declined: the tariff stays


async def test_cost_cap_invoice_shows_the_cap_and_zeroed_lines_and_the_review_moves_up(
        tariff_gateway: TariffGateway, mail_catcher: tuple[MailCatcher, str]) -> None:
    gw = tariff_gateway
    fine = await gw.tenant("At The Cap", "+15550100031")
    over = await gw.tenant("Over The Cap", "+15550100032")
    calls = await asyncio.gather(gw.phone(fine), gw.phone(over))
    fine_s = await gw.billed_seconds(fine, [calls[0]])
    over_s = await gw.billed_seconds(over, [calls[1]])
    period = month_of(gw.clock.at)

    def cap_tariff(first_cap: int) -> dict[str, Any]:
        # call_seconds at 600.00 a minute: the capped sum is billed seconds x 10.00
        return {"kind": "cost_cap", "prices": {"call_seconds": "600.00",
                                               "sms_sent_segments": "1.00"},
                "capped_meters": ["call_seconds"], "category": 1,
                "category_caps": {str(i): money(first_cap * i) for i in range(1, 8)},
                "tolerance_pct": "25"}

    await subscribe(gw, fine.id, postpaid("cap-fine", cap_tariff(fine_s * 800)))
    cap = over_s * 800 - 1
    await subscribe(gw, over.id, postpaid("cap-over", cap_tariff(cap)))

    gw.clock.at = next_month_start(gw.clock.at) + dt.timedelta(hours=2)
    # the gateways' job after the month's end: each tenant reviewed once
    pool = gw.server.app[PG_POOL]
    job = {r.tenant_id: r for r in await review_ended_month(pool, now=gw.clock.at)}
    assert {str(t) for t in job} == {fine.id, over.id}
    assert await review_ended_month(pool, now=gw.clock.at) == []
    results = {r["tenant_id"]: r for r in (await gw.ok(
        "POST", "/admin/tariff-reviews", {"period": period}))["results"]}
    assert results[over.id]["task_id"] == str(job[uuid.UUID(over.id)].task_id)
    assert not results[fine.id]["flagged"] and results[fine.id]["task_id"] is None
    flagged = results[over.id]
    assert flagged["flagged"] and flagged["task_id"]
    assert flagged["figures"]["capped_sum"] == money(over_s * 1000)
    assert (flagged["offer"]["category"], flagged["offer"]["price"]) == (2, money(cap * 2))
    preview = await gw.ok("POST", f"/admin/tasks/{flagged['task_id']}/preview",
                          {"salutation": "Dear Sir or Madam"})
    assert preview["text"].startswith("Dear Sir or Madam,\n")
    assert "exceeded by more than 25%" in preview["text"]
    await gw.ok("PUT", "/admin/templates/cost_cap_offer",
                {"text": "{1}: {{cap}} passed by over {0} %."})  # the operator's own text
    preview = await gw.ok("POST", f"/admin/tasks/{flagged['task_id']}/preview",
                          {"salutation": "Hello Ola"})
    assert preview["text"] == "Hello Ola: {cap} passed by over 25 %."

    await gw.ok("POST", "/admin/invoices/close", {"period": period})
    invoices = (await gw.ok("GET", "/v1/invoices", headers=over.auth))["invoices"]
    closed = next(i for i in invoices if i["period"] == period)
    assert closed["status"] == "finalized"
    lines = [(line["kind"], line["quantity"], line["amount"]) for line in closed["lines"]]
    assert lines == [("usage", 0, "0.00"), ("usage", 0, "0.00"),
                     ("cost_cap", 1, money(cap))]
    assert closed["total"] == money(cap)
    below = next(i for i in (await gw.ok("GET", "/v1/invoices", headers=fine.auth))[
        "invoices"] if i["period"] == period)
    # above its cap (the cap is invoiced) but exactly at cap x 1.25: not flagged
    assert [line["kind"] for line in below["lines"]] == ["usage", "usage", "cost_cap"]

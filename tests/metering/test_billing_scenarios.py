"""Billing stories that move the clock through cycles, on real PostgreSQL and Redis.

A tenant subscribes mid-January to seed 000's plan (setup fee, pro-rata month, plan
credits granted), spends credits, the cycle job at 1 February closes January, expires the
unused plan credits and grants February's; 200 successes from the agent's tools and 100
from the tenant's CRM make February's invoice exactly seed 000's 8,550.00 / 28.50; a
change of plan waits for March (with its rate card); void and paid keep the numbers.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis
from pypdf import PdfReader

from metering.billing.closing import close_period
from metering.billing.cycle import run_cycle
from metering.billing.errors import Conflict, InvalidField, InvalidTransition, PeriodNotEnded
from metering.billing.invoices import (
    Status,
    get_invoice,
    list_invoices,
    mark_paid,
    upcoming_invoice,
    void_invoice,
)
from metering.billing.pdf import render_invoice_pdf
from metering.billing.plans import get_plan, list_plans
from metering.billing.subscriptions import Change, subscribe, tenant_plan
from metering.billing.successes import list_successes, record_api_success
from metering.cards import card_for_tenant
from metering.credit_store import CreditStore
from metering.outcomes import Appointment, Origin, Ticket, record_outcome
from metering.ratecard import default_rate_card
from metering.reconcile import reconcile_tenant
from tests.metering.billing_helpers import C, add_plan, at, spend
from tests.metering.ledger import insert_tenant, ledger_topup

STARTER_CARD = {"name": "starter", "inherit": "default",
                "meters": {"call_seconds": {"price": "80", "block": 60000, "increment": 1000}}}


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    return CreditStore(redis_client, key_prefix)


async def _tools_successes(pool: asyncpg.Pool, tenant: uuid.UUID, n: int) -> None:
    origin = Origin(tenant, f"wa_{uuid.uuid4().hex[:8]}", "whatsapp", "+905551112233")
    for i in range(n):
        record = Appointment("Ayşe", "tomorrow 3pm", "cut") if i % 2 else Ticket("broken")
        await record_outcome(pool, origin, f"call_{i}", record)
    await record_outcome(pool, origin, "call_0", Ticket("broken"))  # a replayed tool call


async def test_seed_000_story_through_three_cycles(pg_pool: asyncpg.Pool,
                                                   store: CreditStore) -> None:
    pool = pg_pool
    await add_plan(pool, at("2027-01-02 09:00"))
    await add_plan(pool, at("2027-01-02 09:00"), id="starter", name="Starter",
                   setup_fee="0", monthly_fee="990.00", success_fee="15.00",
                   included_credits=20_000, credit_rollover=True, rate_card=STARTER_CARD)
    tenant = uuid.UUID(await insert_tenant(pool))
    await ledger_topup(pool, store, str(tenant), 1_000)  # purchased: never expires

    # January: subscribed on the 15th (17 of 31 days), setup fee, credits at once.
    subscribed = await subscribe(pool, store, tenant_id=tenant, plan_id="growth",
                                 now=at("2027-01-15 10:00"))
    assert subscribed.change is Change.STARTED
    assert subscribed.grant is not None and subscribed.grant.applied
    assert (await store.balance(str(tenant))).available == (1_000 + 150_000) * C
    await spend(pool, store, tenant, 40_000 * C, at("2027-01-20 12:00"))
    draft = await upcoming_invoice(pool, tenant_id=tenant, now=at("2027-01-20 12:00"))
    assert draft.status is Status.DRAFT and draft.number is None
    assert [line.to_json(draft.currency)["amount"] for line in draft.lines] == [
        "20000.00", "2714.52", "0.00"]
    assert draft.to_json()["total"] == "22714.52"
    assert draft.credits_used == {"sms_sent_segments": 40_000 * C}
    pdf = PdfReader(io.BytesIO(render_invoice_pdf(draft, tenant_name="Kuaför Ayşe"))).pages[0]
    assert "DRAFT" in pdf.extract_text() and "22714.52" in pdf.extract_text()
    with pytest.raises(PeriodNotEnded):
        await close_period(pool, period="2027-01", now=at("2027-01-31 23:59"))

    # 1 February: January closes, its unused plan credits expire, February's are granted.
    report = await run_cycle(pool, store, now=at("2027-02-01 00:01"))
    assert [f.number for f in report.finalized] == ["VGW-2027-000001"]
    assert [e.micro_credits for e in report.expiries] == [110_000 * C]
    balance = await store.balance(str(tenant))
    assert balance.available == (1_000 + 150_000) * C  # 1,000 bought + February's grant
    assert (balance.topped_up + balance.granted
            == balance.available + balance.reserved + balance.billed + balance.expired)
    again = await run_cycle(pool, store, now=at("2027-02-01 00:02"))
    assert again.tenants == 0 and (await store.balance(str(tenant))) == balance
    january = await get_invoice(pool, invoice_id=draft.id, tenant_id=tenant)
    assert january.status is Status.FINALIZED and january.to_json()["total"] == "22714.52"

    # February: 200 successes from the tools (one replayed), 100 from the CRM by API.
    await _tools_successes(pool, tenant, 200)
    for i in range(100):
        await record_api_success(pool, tenant_id=tenant, kind="order_placed",
                                 idempotency_key=f"crm-{i}", reference=f"SO-{i}",
                                 now=at("2027-02-10 10:00"))
    # The tenant moves to Starter: from March, with its rate card.
    change = await subscribe(pool, store, tenant_id=tenant, plan_id="starter",
                             now=at("2027-02-20 08:00"))
    assert change.change is Change.SCHEDULED
    plans = await tenant_plan(pool, tenant, at("2027-02-20 08:00"))
    assert plans.current is not None and plans.current.plan.id == "growth"
    assert plans.pending is not None and plans.pending.plan.id == "starter"
    assert plans.pending.effective_from == dt.date(2027, 3, 1)
    assert await card_for_tenant(pool, tenant, at("2027-02-28 23:59")) == default_rate_card()
    assert (await card_for_tenant(pool, tenant, at("2027-03-01 00:00"))).name == "starter"

    report = await run_cycle(pool, store, now=at("2027-03-01 00:05"))
    february = next(i for i in (await list_invoices(pool, tenant_id=tenant)).items
                    if str(i.period) == "2027-02")
    body = february.to_json()
    assert body["number"] == "VGW-2027-000002"
    assert [(line["kind"], line["quantity"], line["unit_price"], line["amount"])
            for line in body["lines"]] == [("monthly_fee", 1, "4950.00", "4950.00"),
                                           ("success_fee", 300, "12.00", "3600.00")]
    assert body["total"] == "8550.00" and body["successes"] == 300
    assert body["cost_per_success"] == "28.50"
    text = PdfReader(io.BytesIO(render_invoice_pdf(february, tenant_name="T"))).pages[0] \
        .extract_text()
    assert "8550.00" in text and "VGW-2027-000002" in text and "DRAFT" not in text

    # March: Starter, no setup fee, its credits roll over (nothing expires at April).
    march = await upcoming_invoice(pool, tenant_id=tenant, now=at("2027-03-02 00:00"))
    assert march.plan_id == "starter"
    assert [line.kind.value for line in march.lines] == ["monthly_fee", "success_fee"]
    assert march.successes == 0
    report = await run_cycle(pool, store, now=at("2027-04-01 00:00"))
    assert report.expiries == [] and [f.number for f in report.finalized] == ["VGW-2027-000003"]

    # Void keeps its number; paid is final; drafts cannot be paid.
    voided = await void_invoice(pool, invoice_id=january.id, now=at("2027-04-02 00:00"))
    assert voided.status is Status.VOID and voided.number == "VGW-2027-000001"
    assert (await void_invoice(pool, invoice_id=january.id, now=at("2027-04-03"))).status \
        is Status.VOID
    with pytest.raises(InvalidTransition):
        await mark_paid(pool, invoice_id=january.id, now=at("2027-04-03 00:00"))
    assert (await mark_paid(pool, invoice_id=february.id, now=at("2027-04-03"))).status \
        is Status.PAID
    april = await upcoming_invoice(pool, tenant_id=tenant, now=at("2027-04-03 00:00"))
    with pytest.raises(InvalidTransition):
        await mark_paid(pool, invoice_id=april.id, now=at("2027-04-03 00:00"))
    # The ledger and the live balance agree, grants and expiry included.
    assert await reconcile_tenant(pool, store, tenant) == []


async def test_late_success_goes_on_the_next_invoice(pg_pool: asyncpg.Pool,
                                                     store: CreditStore) -> None:
    await add_plan(pg_pool, at("2027-01-01 00:00"))
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await subscribe(pg_pool, store, tenant_id=tenant, plan_id="growth",
                    now=at("2027-01-10 00:00"), start=dt.date(2027, 1, 1))
    await record_api_success(pg_pool, tenant_id=tenant, kind="ticket_created",
                             idempotency_key="a", now=at("2027-01-20 00:00"))
    await close_period(pg_pool, period="2027-01", now=at("2027-02-01 00:00"))
    # Reported on 2 February for a booking of 31 January: January is closed.
    await record_api_success(pg_pool, tenant_id=tenant, kind="appointment_booked",
                             idempotency_key="b", occurred_at=at("2027-01-31 18:00"),
                             now=at("2027-02-02 00:00"))
    await upcoming_invoice(pg_pool, tenant_id=tenant, now=at("2027-02-02 00:00"))
    invoices = (await list_invoices(pg_pool, tenant_id=tenant)).items
    assert [(str(i.period), i.status.value, i.successes) for i in invoices] == [
        ("2027-02", "draft", 1), ("2027-01", "finalized", 1)]
    january = invoices[1]
    assert january.to_json()["total"] == "24962.00"  # back-dated: no pro rata; 1 success
    await close_period(pg_pool, period="2027-02", now=at("2027-03-01 00:00"))
    assert (await get_invoice(pg_pool, invoice_id=invoices[0].id)).successes == 1
    assert (await get_invoice(pg_pool, invoice_id=january.id)) == january  # never changes


async def test_api_successes_replay_and_conflict(pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    other = uuid.UUID(await insert_tenant(pg_pool))
    now = at("2027-01-05 10:00")
    first = await record_api_success(pg_pool, tenant_id=tenant, kind="order_placed",
                                     idempotency_key="k1", reference="SO-1", now=now)
    again = await record_api_success(pg_pool, tenant_id=tenant, kind="order_placed",
                                     idempotency_key="k1", reference="SO-1", now=now)
    assert first.created and not again.created and again.success == first.success
    with pytest.raises(Conflict) as caught:
        await record_api_success(pg_pool, tenant_id=tenant, kind="order_placed",
                                 idempotency_key="k1", reference="SO-2", now=now)
    assert caught.value.code == "idempotency_conflict"
    # Another tenant's key space is its own.
    assert (await record_api_success(pg_pool, tenant_id=other, kind="order_placed",
                                     idempotency_key="k1", now=now)).created
    for bad, field in (({"kind": "sale"}, "kind"), ({"reference": ""}, "reference"),
                       ({"occurred_at": at("2027-02-01 00:00")}, "occurred_at"),
                       ({"idempotency_key": ""}, "Idempotency-Key")):
        args = {"kind": "order_placed", "idempotency_key": "k9", **bad}
        with pytest.raises(InvalidField) as refused:
            await record_api_success(pg_pool, tenant_id=tenant, now=now, **args)  # type: ignore[arg-type]
        assert refused.value.field == field
    for i in range(5):
        await record_api_success(pg_pool, tenant_id=tenant, kind="ticket_created",
                                 idempotency_key=f"t{i}",
                                 occurred_at=now + dt.timedelta(minutes=i), now=now)
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_successes(pg_pool, tenant_id=tenant, kind="ticket_created",
                                    cursor=cursor, limit=2)
        seen.extend(s.id for s in page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert len(seen) == len(set(seen)) == 5
    window = await list_successes(pg_pool, tenant_id=tenant, since=now,
                                  until=now + dt.timedelta(minutes=2))
    assert len(window.items) == 3  # k1 at `now`, t0, t1


async def test_plans_version_instead_of_changing(pg_pool: asyncpg.Pool,
                                                 store: CreditStore) -> None:
    await add_plan(pg_pool, at("2027-01-01 00:00"))
    await add_plan(pg_pool, at("2027-01-01 00:00"))  # the same again: a replay
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await subscribe(pg_pool, store, tenant_id=tenant, plan_id="growth",
                    now=at("2027-01-03 00:00"))
    await add_plan(pg_pool, at("2027-01-10 00:00"), monthly_fee="5500.00")
    assert (await get_plan(pg_pool, "growth")).version == 2
    plans = await tenant_plan(pg_pool, tenant, at("2027-01-10 00:00"))
    assert plans.current is not None and plans.current.plan.version == 1
    assert plans.pending is not None and plans.pending.plan.version == 2
    draft = await upcoming_invoice(pg_pool, tenant_id=tenant, now=at("2027-01-10 00:00"))
    assert draft.plan_version == 1
    await run_cycle(pg_pool, store, now=at("2027-02-01 00:00"))
    february = await upcoming_invoice(pg_pool, tenant_id=tenant, now=at("2027-02-01 01:00"))
    assert february.plan_version == 2 and february.lines[0].amount == 550_000
    for n in range(3):
        await add_plan(pg_pool, at("2027-01-01 00:00"), id=f"p{n}", name=f"P{n}")
    page = await list_plans(pg_pool, limit=3)
    assert [p.id for p in page.items] == ["growth", "p0", "p1"] and page.next_cursor
    rest = await list_plans(pg_pool, cursor=page.next_cursor, limit=3)
    assert [p.id for p in rest.items] == ["p2"] and rest.next_cursor is None


async def test_bad_plans_and_subscriptions_name_the_field(pg_pool: asyncpg.Pool,
                                                          store: CreditStore) -> None:
    now = at("2027-01-05 00:00")
    for changes, field in (({"monthly_fee": 4950.0}, "monthly_fee"),
                           ({"setup_fee": "-1"}, "setup_fee"),
                           ({"currency": "TRL"}, "currency"),
                           ({"currency": "JPY", "setup_fee": "0", "monthly_fee": "5000",
                             "success_fee": "12.50"}, "success_fee"),
                           ({"included_credits": -1}, "included_credits"),
                           ({"credit_rollover": "yes"}, "credit_rollover"),
                           ({"id": "Growth Plan"}, "id"),
                           ({"rate_card": {"meters": {"call_seconds": {"price": 1.5}}}},
                            "rate_card.call_seconds.price")):
        with pytest.raises(InvalidField) as caught:
            await add_plan(pg_pool, now, **changes)
        assert caught.value.field == field
    await add_plan(pg_pool, now)
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    for kwargs, field in (({"plan_id": "nope"}, "plan_id"),
                          ({"start": dt.date(2026, 12, 31)}, "start"),
                          ({"start": dt.date(2027, 1, 6)}, "start")):
        with pytest.raises(InvalidField) as refused:
            await subscribe(pg_pool, store, tenant_id=tenant, now=now,
                            **{"plan_id": "growth", **kwargs})  # type: ignore[arg-type]
        assert refused.value.field == field
    await subscribe(pg_pool, store, tenant_id=tenant, plan_id="growth", now=now)
    with pytest.raises(InvalidField) as late:
        await subscribe(pg_pool, store, tenant_id=tenant, plan_id="growth", now=now,
                        start=dt.date(2027, 1, 1))
    assert late.value.field == "start"

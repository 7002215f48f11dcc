"""Acceptance: a fixture month of known conversations (calls, WhatsApp, SMS, successes,
handoffs, abandoned calls, repeat customers, ratings before and after settlement) for a
tenant in Europe/Istanbul (UTC+3), and every KPI of `GET /v1/kpis` equal to the value
worked out by hand below from the definitions in docs/kpis.md."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tests.api.conftest import Client, Tenant
from tests.api.kpi_fixtures import Conv, play, subscribe_plan, utc

# Local time = UTC + 3. Customers A..F.
P1 = Conv("phone", "A", utc("2026-10-31 21:30"), 300, 2000, outcomes=["appointment_booked"],
          micro_credits=3_000_000, rating=5)  # Nov 1 00:30 local: November
P2 = Conv("phone", "B", utc("2026-11-03 07:00"), 8, None, "abandoned")
P3 = Conv("phone", "C", utc("2026-11-03 08:00"), 120, 25_000, "transferred", handoff=True,
          micro_credits=1_500_000)
W1 = Conv("whatsapp", "A", utc("2026-11-05 06:00"), 1200, 3000, resolved=True,
          micro_credits=200_000, rating_after=4)
W2 = Conv("whatsapp", "D", utc("2026-11-10 11:00"), 900, 1500, outcomes=["ticket_created"],
          micro_credits=300_000, rating_after=2)
S1 = Conv("sms", "D", utc("2026-11-12 05:00"), 600, 4000, micro_credits=100_000)
P4 = Conv("phone", "E", utc("2026-11-15 13:00"), 600, 1000,
          outcomes=["order_placed", "appointment_booked"], micro_credits=6_000_000, rating=3)
S2 = Conv("sms", "A", utc("2026-11-20 09:00"), 600, 2500, outcomes=["order_placed"],
          micro_credits=150_000)
P5 = Conv("phone", "B", utc("2026-11-20 20:30"), 5, None, "abandoned")
W3 = Conv("whatsapp", "C", utc("2026-11-25 07:00"), 900, 20_000, "transferred", handoff=True,
          resolved=True, micro_credits=250_000)
P6 = Conv("phone", "A", utc("2026-11-30 19:00"), 60, 500, resolved=True, micro_credits=700_000)
# Outside November in local time (inside it in UTC), and before it.
X1 = Conv("phone", "A", utc("2026-11-30 22:30"), 30, 1000, micro_credits=500_000)
O1 = Conv("phone", "F", utc("2026-10-31 20:00"), 60, 1000, outcomes=["appointment_booked"],
          micro_credits=400_000)
W4 = Conv("whatsapp", "E", utc("2026-11-28 07:00"), 60, 1000, settle=False)  # still open
MONTH = [P1, P2, P3, W1, W2, S1, P4, S2, P5, W3, P6, X1, O1, W4]

# By hand, November (local): P1 P2 P3 W1 W2 S1 P4 S2 P5 W3 P6 = 11 settled conversations.
EXPECTED: dict[str, Any] = {
    "conversations": 11,
    "successes": 5,                    # P1 1, W2 1, P4 2, S2 1
    "success_rate": 0.3636,            # 4 with a success (P1 W2 P4 S2) / 11
    "appointments": 2,                 # P1, P4
    "tickets": 1,                      # W2
    "orders": 2,                       # P4, S2
    "handoffs": 2,                     # P3, W3
    "escalation_rate": 0.1818,         # 2 / 11
    "aht_s": 270.0,                    # answered calls P1 300 + P3 120 + P4 600 + P6 60 / 4
    "asa_ms": 6611,                    # (2000+25000+3000+1500+4000+1000+2500+20000+500) / 9
    "abandonment_rate": 0.3333,        # P2, P5 of 6 calls
    "service_level": 0.7273,           # answered within 20 s: all 9 answered but P3 / 11
    "resolution_rate": 0.5455,         # P1 W1 W2 P4 S2 P6 (W3 resolved but handed off) / 11
    # Resolved and the customer not back within 7 days: W1 (A back 15 days later), P4 (E's
    # next conversation 13 days later), S2 (A back 10 days later). Not: P1 (A back on
    # WhatsApp 4 days later), W2 (D back by SMS 2 days later), P6 (A back 3.5 hours later,
    # on December 1 local).
    "fcr_rate": 0.2727,                # 3 / 11
    "csat": 3.5,                       # (5 + 4 + 2 + 3) / 4
    "csat_responses": 4,
    "customers": 5,                    # A B C D E
    "conversations_per_customer": 2.2,  # 11 / 5
    "credits_used": "12.200000",
    "micro_credits_used": 12_200_000,
    # Credits / 5 successes; money: (5 x 12.00 + 4,950.00 x 30/30 days) / 5 = 1,002.00 TRY.
    "cost_per_success": {"credits": "2.440000", "micro_credits": 2_440_000,
                         "money": "1002.00", "currency": "TRY"},
    "dial_efficiency": None, "conversion_rate": None, "avg_call_duration_s": None,
    "lead_response_time_s": None, "appointment_rate": None, "follow_up_rate": None,
    "pipeline_velocity_h": None,
}


async def _month(pool: asyncpg.Pool, tenant: Tenant) -> None:
    await pool.execute("UPDATE tenants SET timezone = 'Europe/Istanbul' WHERE id = $1::uuid",
                       tenant.id)
    await subscribe_plan(pool, tenant.id, dt.date(2026, 11, 1), monthly_fee=495_000,
                         success_fee=1_200)
    await play(pool, tenant.id, MONTH)


async def _kpis(client: Client, tenant: Tenant, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/kpis", params={"from": "2026-11-01", "to": "2026-11-30",
                                                     **params}, headers=tenant.auth)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_every_kpi_of_the_fixture_month_equals_the_hand_computed_value(
        client: Client, tenant: Tenant, pg_pool: asyncpg.Pool) -> None:
    await _month(pg_pool, tenant)
    body = await _kpis(client, tenant)
    assert body["totals"] == EXPECTED
    assert body["dispositions"] == {"completed": 7, "abandoned": 2, "transferred": 2}
    assert body["channel_mix"] == {"phone": 6, "whatsapp": 3, "sms": 2, "web": 0}
    days = {entry["period"]: entry for entry in body["series"]}
    assert len(days) == 30 and body["series"][0]["period"] == "2026-11-01"
    assert days["2026-11-01"]["conversations"] == 1  # P1, 21:30 UTC the day before
    assert days["2026-11-30"]["conversations"] == 1  # P6; X1 is December 1 here
    nov3 = days["2026-11-03"]
    assert (nov3["conversations"], nov3["abandonment_rate"], nov3["aht_s"],
            nov3["asa_ms"], nov3["customers"]) == (2, 0.5, 120.0, 25_000, 2)
    empty = days["2026-11-02"]
    assert (empty["conversations"], empty["success_rate"], empty["csat"],
            empty["cost_per_success"]["money"]) == (0, None, None, None)


async def test_weeks_filters_and_the_rebuild_agree_with_the_hand_count(
        client: Client, tenant: Tenant, pg_pool: asyncpg.Pool) -> None:
    await _month(pg_pool, tenant)
    weeks = await _kpis(client, tenant, granularity="week")
    # ISO weeks from Monday; the first is cut to November 1 (a Sunday).
    assert [(w["period"], w["conversations"], w["customers"]) for w in weeks["series"]] == [
        ("2026-10-26", 1, 1), ("2026-11-02", 3, 3), ("2026-11-09", 3, 2),
        ("2026-11-16", 2, 2), ("2026-11-23", 1, 1), ("2026-11-30", 1, 1)]
    assert weeks["totals"] == EXPECTED
    months = await _kpis(client, tenant, granularity="month")
    assert [m["period"] for m in months["series"]] == ["2026-11-01"]
    assert months["series"][0]["customers"] == 5
    phone = await _kpis(client, tenant, channel="phone")
    # P1 P2 P3 P4 P5 P6; customers A B C E; with a success P1 P4.
    assert [phone["totals"][k] for k in ("conversations", "customers",
                                         "conversations_per_customer", "success_rate")] \
        == [6, 4, 1.5, 0.3333]
    assert phone["channel_mix"] == {"phone": 6, "whatsapp": 0, "sms": 0, "web": 0}
    # docs/kpis.md's example: 11.2 credits / 3 successes; (3 x 12.00 + 4,950.00) / 3.
    assert phone["totals"]["cost_per_success"] == {
        "credits": "3.733333", "micro_credits": 3_733_333, "money": "1662.00",
        "currency": "TRY"}
    assert phone["dispositions"] == {"abandoned": 2, "completed": 3, "transferred": 1}
    texts = await _kpis(client, tenant, channel="sms")
    assert [texts["totals"][k] for k in ("conversations", "customers", "abandonment_rate",
                                         "aht_s")] == [2, 2, None, None]
    outbound = await _kpis(client, tenant, direction="outbound")
    assert outbound["totals"]["conversations"] == 0
    # The set-based rebuild finds exactly what the triggers kept, row for row.
    before = await _rollups(pg_pool)
    await pg_pool.execute("SELECT kpi_rebuild($1::uuid)", tenant.id)
    assert await _rollups(pg_pool) == before
    # A new time zone rebuilds: in UTC, P1 is October and X1 November.
    await pg_pool.execute("UPDATE tenants SET timezone = 'UTC' WHERE id = $1::uuid", tenant.id)
    in_utc = await _kpis(client, tenant)
    assert in_utc["totals"]["conversations"] == 11
    assert {d["period"]: d["conversations"] for d in in_utc["series"]}["2026-11-30"] == 2
    assert in_utc["totals"]["appointments"] == 1  # P4 only: P1 is October now


async def _rollups(pool: asyncpg.Pool) -> list[list[Any]]:
    tables = []
    for table in ("kpi_days", "kpi_disposition_days", "kpi_customer_days"):
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5")  # noqa: S608
        tables.append([tuple(r) for r in rows if any(
            v != 0 for k, v in r.items() if isinstance(v, int))])  # zero rows are no data
    return tables


async def test_a_late_rating_and_a_returning_customer_move_the_figures(
        client: Client, tenant: Tenant, pg_pool: asyncpg.Pool) -> None:
    await _month(pg_pool, tenant)
    # E comes back on December 2 local: P4 ended November 15, so P4 stays resolved first
    # time; a rating changed after settlement replaces the old one.
    late = Conv("sms", "E", utc("2026-12-02 09:00"), 60, 1000)
    await play(pg_pool, tenant.id, [late])
    await pg_pool.execute("UPDATE conversations SET rating = 5 WHERE id = $1", W2.id)
    body = await _kpis(client, tenant)
    assert body["totals"]["fcr_rate"] == EXPECTED["fcr_rate"]
    assert body["totals"]["csat"] == 4.25  # (5 + 4 + 5 + 3) / 4
    # S2's customer A is back within 7 days of S2's end: S2 stops counting.
    back = Conv("web", "A", utc("2026-11-26 12:00"), 60, 800)
    await play(pg_pool, tenant.id, [back])
    again = await _kpis(client, tenant)
    assert again["totals"]["fcr_rate"] == 0.1667  # W1, P4 of 12
    assert again["totals"]["conversations"] == 12 and again["totals"]["customers"] == 5

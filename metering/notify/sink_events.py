"""The notifications of one sink batch, written in the batch's transaction.

`session.completed` costs one lookup per batch (which of the batch's tenants subscribe)
and nothing more for tenants without an endpoint, so the sink's COPY path stays fast.
Balance alerts become webhook messages and mails to the tenant's alert addresses.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import orjson

from metering.money import format_credits
from metering.notify.alerts import alert_mail
from metering.notify.mail import enqueue_mail
from metering.notify.outbox import Event, emit_many, subscribed_tenants
from metering.outbox import BalanceAlert, EventRows


async def notify_batch(conn: asyncpg.Connection, rows: EventRows) -> None:
    if rows.sessions:
        await _sessions_completed(conn, rows.sessions)
    if rows.alerts:
        await _balance_alerts(conn, rows.alerts)


async def _sessions_completed(conn: asyncpg.Connection, sessions: list[tuple[Any, ...]]) -> None:
    wanted = await subscribed_tenants(conn, (row[1] for row in sessions), "session.completed")
    if not wanted:
        return
    chosen = [row for row in sessions if row[1] in wanted]
    outcomes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in await conn.fetch(
            "SELECT session_id, event_id, kind, record_id FROM success_events "
            "WHERE session_id = ANY($1::text[]) ORDER BY occurred_at", [r[0] for r in chosen]):
        outcomes[o["session_id"]].append({"event_id": o["event_id"], "kind": o["kind"],
                                          "record_id": str(o["record_id"])})
    await emit_many(conn, [_session_event(row, outcomes[row[0]]) for row in chosen])


def _session_event(row: tuple[Any, ...], outcomes: list[dict[str, Any]]) -> Event:
    session, tenant, channel, status, started, ended, _, micro, _, details_text = row
    details = orjson.loads(details_text) if details_text else {}
    details = details if isinstance(details, dict) else {}
    data = {
        "session_id": session, "channel": channel, "status": status,
        "disposition": details.get("disposition"), "call_sid": details.get("call_sid"),
        "started_at": started.isoformat(), "ended_at": ended.isoformat(),
        "duration_ms": int((ended - started).total_seconds() * 1000),
        "credits": format_credits(micro), "micro_credits": micro, "outcomes": outcomes,
        "conversation_id": details.get("conversation_id"), "summary": details.get("summary"),
    }
    return Event(tenant, "session.completed", data, session, ended)


async def _balance_alerts(conn: asyncpg.Connection, alerts: list[BalanceAlert]) -> None:
    await emit_many(conn, [Event(a.tenant_id, a.alert, alert_data(a), a.cause_id, a.at)
                           for a in alerts])
    tenants = list({a.tenant_id for a in alerts})
    emails: dict[uuid.UUID, list[str]] = {
        row["tenant_id"]: list(row["emails"]) for row in await conn.fetch(
            "SELECT tenant_id, emails FROM alert_settings WHERE tenant_id = ANY($1::uuid[])",
            tenants)}
    for alert in alerts:
        subject, body = alert_mail(alert)
        await enqueue_mail(conn, alert.tenant_id, emails.get(alert.tenant_id, []), subject,
                           body, f"alert:{alert.cause_id}")


def alert_data(alert: BalanceAlert) -> dict[str, Any]:
    balance = alert.available + alert.reserved
    data: dict[str, Any] = {
        "available_credits": format_credits(alert.available),
        "available_micro_credits": alert.available,
        "balance_credits": format_credits(balance),
        "balance_micro_credits": balance,
        "paused": alert.alert == "balance.depleted",
    }
    if alert.alert == "balance.low":
        data["low_balance_credits"] = format_credits(alert.threshold)
    return data

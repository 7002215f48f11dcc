"""The weekly report (seed 000's "weekly performance reports"): an ISO week of the tenant's
local days, its KPIs (totals and a series per day), the commentary against the week
before, and the top conversations. As JSON (`GET /v1/reports/weekly?week=2026-W48`) and,
each Monday, as an HTML mail with the PDF attached to the tenant's `report_emails`.

When: the week is over at Monday 00:00 in the tenant's time zone; from then on the first
pass of `queue_weekly_reports` (every gateway runs it) queues the mail of the week just
ended, in the same transaction as the `weekly_reports` row whose primary key (tenant,
week) makes it once across processes. A pass missed on Monday (every gateway down) is
caught up later that week; older weeks are not sent. A tenant created after the week
ended gets none for it.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import unicodedata
import uuid
from typing import Any

import asyncpg
from fpdf import FPDF

from metering.kpis.commentary import CommentaryWriter, commentary
from metering.kpis.report import KpiQuery, kpi_report
from metering.money import format_credits
from metering.notify.mail import Attachment, enqueue_mail

log = logging.getLogger("voicegw.kpis")

TOP_CONVERSATIONS = 10
_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$")


class BadWeek(ValueError):
    """Not an ISO week written YYYY-Www, or a week that year does not have."""


def week_days(week: str) -> tuple[dt.date, dt.date]:
    match = _WEEK.match(week)
    if match is None:
        raise BadWeek("must be an ISO week such as 2026-W48")
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise BadWeek(f"{week} does not exist") from exc
    return monday, monday + dt.timedelta(days=6)


def week_of(day: dt.date) -> str:
    year, number, _ = day.isocalendar()
    return f"{year:04d}-W{number:02d}"


async def top_conversations(pool: asyncpg.Pool, tenant_id: uuid.UUID, start: dt.date,
                            end: dt.date) -> list[dict[str, Any]]:
    """The week's settled conversations with the most successes, then the best rating,
    then the longest."""
    rows = await pool.fetch(
        """SELECT c.id, c.channel, c.direction, c.customer_masked, c.started_at, c.ended_at,
                  c.disposition, c.successes, c.outcomes::text AS outcomes, c.handoff,
                  c.rating, c.summary, c.micro_credits
           FROM tenants t JOIN conversations c ON c.tenant_id = t.id
           WHERE t.id = $1 AND c.settled_at IS NOT NULL
             AND c.started_at >= ($2::date::timestamp AT TIME ZONE t.timezone)
             AND c.started_at < (($3::date + 1)::timestamp AT TIME ZONE t.timezone)
           ORDER BY c.successes DESC, c.rating DESC NULLS LAST,
                    c.ended_at - c.started_at DESC NULLS LAST, c.id
           LIMIT $4""", tenant_id, start, end, TOP_CONVERSATIONS)
    return [{"id": str(r["id"]), "channel": r["channel"], "direction": r["direction"],
             "customer": r["customer_masked"], "started_at": r["started_at"].isoformat(),
             "ended_at": r["ended_at"].isoformat() if r["ended_at"] else None,
             "disposition": r["disposition"], "successes": r["successes"],
             "handoff": r["handoff"], "rating": r["rating"], "summary": r["summary"],
             "credits": format_credits(r["micro_credits"]),
             "micro_credits": r["micro_credits"]} for r in rows]


async def weekly_report(pool: asyncpg.Pool, tenant_id: uuid.UUID, week: str,
                        writer: CommentaryWriter | None) -> dict[str, Any]:
    start, end = week_days(week)
    kpis = await kpi_report(pool, KpiQuery(tenant_id, start, end, granularity="day"))
    return {"week": week, "from": start.isoformat(), "to": end.isoformat(),
            "kpis": {key: kpis[key] for key in ("totals", "series", "dispositions",
                                                "channel_mix")},
            "commentary": await commentary(pool, tenant_id, start, end, writer),
            "top_conversations": await top_conversations(pool, tenant_id, start, end)}


# ---- rendering -------------------------------------------------------------------------

_CARDS = (("Conversations", "conversations"), ("Success rate", "success_rate"),
          ("Operations completed", "successes"), ("Operators brought in", "handoffs"),
          ("Meetings planned", "appointments"), ("Resolution rate", "resolution_rate"),
          ("First-contact resolution", "fcr_rate"), ("CSAT (1-5)", "csat"),
          ("Average handle time (s)", "aht_s"), ("Speed of answer (ms)", "asa_ms"),
          ("Abandoned calls", "abandonment_rate"), ("Credits used", "credits_used"))
_RATES = {"success_rate", "resolution_rate", "fcr_rate", "abandonment_rate"}


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in _RATES:
        return f"{value * 100:.1f}%"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    totals = report["kpis"]["totals"]
    return [(label, _shown(key, totals[key])) for label, key in _CARDS]


def subject(report: dict[str, Any], tenant_name: str) -> str:
    return f"Weekly report {report['week']} ({report['from']} to {report['to']}): {tenant_name}"


def render_text(report: dict[str, Any], tenant_name: str) -> str:
    lines = [subject(report, tenant_name), ""]
    lines += [f"{label}: {value}" for label, value in _rows(report)]
    lines += ["", report["commentary"]["text"], "", "The full report is attached (PDF)."]
    return "\n".join(lines)


def render_html(report: dict[str, Any], tenant_name: str) -> str:
    e = html.escape
    cards = "".join(f"<tr><td>{e(label)}</td><td style='text-align:right'><b>{e(value)}</b>"
                    "</td></tr>" for label, value in _rows(report))
    top = "".join(
        f"<tr><td>{e(c['started_at'][:16].replace('T', ' '))}</td><td>{e(c['channel'])}</td>"
        f"<td>{e(c['customer'])}</td><td>{c['successes']}</td>"
        f"<td>{e(str(c['rating'] or '-'))}</td><td>{e(c['summary'] or '')}</td></tr>"
        for c in report["top_conversations"])
    marker = " (automatic text: the writer was unavailable)" \
        if report["commentary"]["fallback"] else ""
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h1>{e(subject(report, tenant_name))}</h1>"
        f"<table>{cards}</table>"
        f"<h2>Commentary{e(marker)}</h2><p>{e(report['commentary']['text'])}</p>"
        "<h2>Top conversations</h2><table><tr><th>Started</th><th>Channel</th>"
        "<th>Customer</th><th>Successes</th><th>Rating</th><th>Summary</th></tr>"
        f"{top}</table></body></html>")


_SPECIAL = str.maketrans({"ı": "i", "İ": "I", "₺": "TRY", "€": "EUR"})


def _latin(text: str) -> str:
    """Text the PDF core font can draw (Windows-1252), accents dropped where needed."""
    text = text.translate(_SPECIAL)
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.encode("cp1252", errors="replace").decode("cp1252")


def render_pdf(report: dict[str, Any], tenant_name: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin(f"Weekly report {report['week']}"))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, _latin(subject(report, tenant_name)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 11)
    with pdf.table(col_widths=(110, 60), text_align=("LEFT", "RIGHT")) as table:
        for label, value in _rows(report):
            row = table.row()
            row.cell(_latin(label))
            row.cell(_latin(value))
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    title = "Commentary" + (" (automatic)" if report["commentary"]["fallback"] else "")
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _latin(report["commentary"]["text"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Top conversations", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    with pdf.table(col_widths=(32, 20, 30, 18, 14, 76)) as table:
        header = table.row()
        for name in ("Started", "Channel", "Customer", "Successes", "Rating", "Summary"):
            header.cell(name)
        for c in report["top_conversations"]:
            row = table.row()
            for value in (c["started_at"][:16].replace("T", " "), c["channel"], c["customer"],
                          str(c["successes"]), str(c["rating"] or "-"),
                          (c["summary"] or "")[:200]):
                row.cell(_latin(value))
    return bytes(pdf.output())


# ---- the Monday job ----------------------------------------------------------------------

async def queue_weekly_reports(pool: asyncpg.Pool, writer: CommentaryWriter | None,
                               now: dt.datetime) -> list[tuple[uuid.UUID, str]]:
    """Queues the mail of the week that ended for each tenant with report e-mails that has
    not had it yet; returns (tenant, week) of the mails this call queued."""
    due = await pool.fetch(
        """SELECT t.id, t.name, t.report_emails,
                  (($1::timestamptz AT TIME ZONE t.timezone)::date - 7) AS day_last_week
           FROM tenants t
           WHERE cardinality(t.report_emails) > 0
             AND t.created_at < (date_trunc('week', $1::timestamptz AT TIME ZONE t.timezone)
                                 AT TIME ZONE t.timezone)
             AND NOT EXISTS (
                 SELECT 1 FROM weekly_reports w WHERE w.tenant_id = t.id
                   AND w.week = to_char(($1::timestamptz AT TIME ZONE t.timezone)::date - 7,
                                        'IYYY-"W"IW'))""", now)
    queued = []
    for row in due:
        week = week_of(row["day_last_week"])
        try:
            if await _queue_one(pool, writer, row["id"], row["name"], week,
                                list(row["report_emails"]), now):
                queued.append((row["id"], week))
        except (asyncpg.PostgresError, OSError) as exc:  # the next pass tries again
            log.warning("weekly report %s of %s not queued: %r", week, row["id"], exc)
    return queued


async def _queue_one(pool: asyncpg.Pool, writer: CommentaryWriter | None,
                     tenant_id: uuid.UUID, tenant_name: str, week: str,
                     recipients: list[str], now: dt.datetime) -> bool:
    report = await weekly_report(pool, tenant_id, week, writer)
    pdf = render_pdf(report, tenant_name)
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            """INSERT INTO weekly_reports (tenant_id, week, recipients, queued_at)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
            tenant_id, week, recipients, now)
        if not claimed:
            return False  # another gateway queued it first
        await enqueue_mail(conn, tenant_id, recipients, subject(report, tenant_name),
                           render_text(report, tenant_name), f"weekly:{tenant_id}:{week}",
                           html=render_html(report, tenant_name),
                           attachment=Attachment(f"weekly-report-{week}.pdf",
                                                 "application/pdf", pdf))
    return True

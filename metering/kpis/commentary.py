"""A short commentary on a period's KPIs against the previous period of equal length.

The numbers are ours (`compare`); only the words come from an LLM, through a
`CommentaryWriter` the gateway provides (metering knows no LLM client). The text is cached
per tenant, period and figures (`kpi_commentaries`): asking again about the same figures
costs one indexed read; once new conversations change the figures, a new text is written.
When the writer fails or takes too long, a plain text made from the figures is answered,
marked `fallback: true`, and not cached (the next request tries the LLM again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from typing import Any, Protocol

import asyncpg
import orjson

from metering.kpis.report import KpiQuery, kpi_report

log = logging.getLogger("voicegw.kpis")

WRITER_TIMEOUT_S = 20.0
MAX_TEXT = 2000
# The KPIs the commentary compares, and how a change is written (points for rates).
COMPARED: tuple[tuple[str, str], ...] = (
    ("conversations", "count"), ("successes", "count"), ("success_rate", "rate"),
    ("appointments", "count"), ("tickets", "count"), ("orders", "count"),
    ("handoffs", "count"), ("escalation_rate", "rate"), ("resolution_rate", "rate"),
    ("fcr_rate", "rate"), ("abandonment_rate", "rate"), ("service_level", "rate"),
    ("aht_s", "value"), ("asa_ms", "value"), ("csat", "value"),
    ("conversations_per_customer", "value"), ("micro_credits_used", "count"),
)
SYSTEM = ("You write a short commentary (3 to 5 sentences, plain text, no lists) for a "
          "business owner about their AI agent's results. Use only the figures given; "
          "rates are fractions (0.78 = 78%). Say what went well, what got worse, and one "
          "thing to look at. Do not invent numbers.")


class CommentaryWriter(Protocol):
    """Words for the figures: (system instructions, the figures as text) -> text."""

    async def __call__(self, system: str, prompt: str) -> str: ...


def previous_range(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each compared KPI: current, previous, change (current - previous, in the KPI's unit)
    and change_ratio (change / previous; null when the previous value is 0 or null)."""
    out: dict[str, dict[str, Any]] = {}
    for name, _kind in COMPARED:
        now, before = current.get(name), previous.get(name)
        change = change_ratio = None
        if now is not None and before is not None:
            change = round(now - before, 4)
            if before:
                change_ratio = round((now - before) / before, 4)
        out[name] = {"current": now, "previous": before, "change": change,
                     "change_ratio": change_ratio}
    return out


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    kind = dict(COMPARED)[name]
    if kind == "rate":
        return f"{value * 100:.1f}%"
    return f"{value:,}" if isinstance(value, int) else f"{value}"


def figures_text(start: dt.date, end: dt.date, figures: dict[str, dict[str, Any]]) -> str:
    lines = [f"Period {start} to {end}, compared with the previous period of equal length."]
    for name, figure in figures.items():
        line = f"- {name}: {_shown(name, figure['current'])} " \
               f"(previous {_shown(name, figure['previous'])})"
        lines.append(line)
    return "\n".join(lines)


def fallback_text(figures: dict[str, dict[str, Any]]) -> str:
    """Plain words from the figures, when no LLM answered."""
    parts = []
    for name in ("conversations", "successes", "success_rate", "handoffs",
                 "resolution_rate", "csat"):
        figure = figures[name]
        now, before = figure["current"], figure["previous"]
        if now is None:
            continue
        if before is None or now == before:
            trend = "unchanged" if now == before else "no earlier figure"
        elif dict(COMPARED)[name] == "rate":
            trend = f"{(now - before) * 100:+.1f} points"
        elif figure["change_ratio"] is not None:
            trend = f"{figure['change_ratio'] * 100:+.0f}%"
        else:
            trend = f"{now - before:+}"
        parts.append(f"{name.replace('_', ' ')} {_shown(name, now)} ({trend})")
    if not parts:
        return "No conversations in this period or the previous one."
    return "Against the previous period: " + "; ".join(parts) + "."


async def commentary(pool: asyncpg.Pool, tenant_id: uuid.UUID, start: dt.date, end: dt.date,
                     writer: CommentaryWriter | None) -> dict[str, Any]:
    before_start, before_end = previous_range(start, end)
    current = (await kpi_report(pool, KpiQuery(tenant_id, start, end)))["totals"]
    previous = (await kpi_report(pool, KpiQuery(tenant_id, before_start, before_end)))["totals"]
    figures = compare(current, previous)
    digest = hashlib.sha256(orjson.dumps(figures, option=orjson.OPT_SORT_KEYS)).hexdigest()
    answer: dict[str, Any] = {
        "from": start.isoformat(), "to": end.isoformat(),
        "previous_from": before_start.isoformat(), "previous_to": before_end.isoformat(),
        "figures": figures, "text": "", "fallback": False, "cached": False}
    cached = await pool.fetchval(
        """SELECT text FROM kpi_commentaries WHERE tenant_id = $1 AND from_day = $2
           AND to_day = $3 AND figures_hash = $4""", tenant_id, start, end, digest)
    if cached is not None:
        return {**answer, "text": cached, "cached": True}
    text = await _write(writer, figures_text(start, end, figures))
    if text is None:
        return {**answer, "text": fallback_text(figures), "fallback": True}
    await pool.execute(
        """INSERT INTO kpi_commentaries (tenant_id, from_day, to_day, figures_hash, text)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        tenant_id, start, end, digest, text)
    return {**answer, "text": text}


async def _write(writer: CommentaryWriter | None, prompt: str) -> str | None:
    if writer is None:
        return None
    try:
        async with asyncio.timeout(WRITER_TIMEOUT_S):
            text = (await writer(SYSTEM, prompt)).strip()
    except Exception as exc:  # any failure of the LLM path answers the fallback text
        log.warning("commentary not written by the LLM: %r", exc)
        return None
    return text[:MAX_TEXT] or None

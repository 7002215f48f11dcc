"""`GET /v1/kpis`, `GET /v1/kpis/commentary` and `GET /v1/reports/weekly` (docs/kpis.md).

Days are the tenant's local days (`timezone`); `from` and `to` are inclusive dates
between 2000-01-01 and 2099-12-31, at most 400 days apart. Bad input is a 422 naming the
parameter.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from aiohttp import web

from api.context import CLOCK, COMMENTARY_WRITER, PG_POOL
from api.errors import InvalidField
from api.kpi_models import (
    Commentary,
    KpiQueryParams,
    KpiReport,
    RangeQuery,
    WeeklyReport,
    WeekQuery,
)
from api.operations import Reply, add, operation, respond
from api.requests import parse_query, require_tenant
from metering.kpis.commentary import CommentaryWriter, commentary
from metering.kpis.report import CHANNELS, DIRECTIONS, Granularity, KpiQuery, kpi_report
from metering.kpis.report import tenant_today as local_today
from metering.kpis.weekly import BadWeek, week_days, week_of, weekly_report

MAX_DAYS = 400
DEFAULT_DAYS = 30
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2099, 12, 31)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
GRANULARITIES: tuple[Granularity, ...] = ("day", "week", "month")


def _date(field: str, text: str | None) -> dt.date | None:
    if text is None or text == "":
        return None
    if not _DATE.match(text):
        raise InvalidField(field, "must be a date YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidField(field, f"{text} is not a date") from exc
    if not EARLIEST <= day <= LATEST:
        raise InvalidField(field, f"must be between {EARLIEST} and {LATEST}")
    return day


async def _range(request: web.Request, tenant_id: uuid.UUID, start_text: str | None,
                 end_text: str | None) -> tuple[dt.date, dt.date]:
    start, end = _date("from", start_text), _date("to", end_text)
    if end is None:
        today = await local_today(request.app[PG_POOL], tenant_id, request.app[CLOCK]())
        end = max(start, today) if start else today
    if start is None:
        start = max(EARLIEST, end - dt.timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise InvalidField("from", "must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidField("to", f"the range may span at most {MAX_DAYS} days")
    return start, end


def _choice(field: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidField(field, f"must be one of {', '.join(allowed)}")
    return value


def _writer(request: web.Request) -> CommentaryWriter | None:
    return request.app.get(COMMENTARY_WRITER)


@operation("GET", "/v1/kpis", "Your KPIs: totals, a series per period, dispositions and "
           "channel mix", "kpis", security="tenant", query=KpiQueryParams,
           responses={200: Reply("the KPIs of the range (docs/kpis.md)", KpiReport)},
           description="Days in your time zone; `from` and `to` inclusive (YYYY-MM-DD), at "
                       "most 400 days; default the last 30 days. Rates are decimals 0..1 with "
                       "4 places, null where undefined; outbound KPIs are null until "
                       "campaigns exist.")
async def get_kpis(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, KpiQueryParams)
    channel = _choice("channel", query.channel, CHANNELS)
    direction = _choice("direction", query.direction, DIRECTIONS)
    granularity = _choice("granularity", query.granularity, GRANULARITIES) or "day"
    start, end = await _range(request, tenant_id, query.from_, query.to)
    period: Granularity = "week" if granularity == "week" else \
        "month" if granularity == "month" else "day"
    report = await kpi_report(request.app[PG_POOL], KpiQuery(
        tenant_id, start, end, channel, direction, period))
    return respond(KpiReport.model_validate(report))


@operation("GET", "/v1/kpis/commentary", "A short commentary on your KPIs against the "
           "previous period", "kpis", security="tenant", query=RangeQuery,
           responses={200: Reply("figures computed by us, words by the LLM", Commentary)},
           description="The previous period has the same number of days and ends the day "
                       "before `from`. Cached per period and figures; when the LLM fails "
                       "the text is made from the figures and `fallback` is true.")
async def get_commentary(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, RangeQuery)
    start, end = await _range(request, tenant_id, query.from_, query.to)
    answer = await commentary(request.app[PG_POOL], tenant_id, start, end, _writer(request))
    return respond(Commentary.model_validate(answer))


@operation("GET", "/v1/reports/weekly", "The weekly report: the week's KPIs, the commentary "
           "and the top conversations", "kpis", security="tenant", query=WeekQuery,
           responses={200: Reply("the report the Monday e-mail carries", WeeklyReport)},
           description="`week` is an ISO week (2026-W48) of your time zone; default: the "
                       "last full week.")
async def get_weekly_report(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, WeekQuery)
    pool = request.app[PG_POOL]
    if query.week:
        try:
            start, _ = week_days(query.week)
        except BadWeek as exc:
            raise InvalidField("week", str(exc)) from exc
        if not EARLIEST <= start <= LATEST:
            raise InvalidField("week", f"must be between {EARLIEST} and {LATEST}")
        week = query.week
    else:
        week = week_of(await local_today(pool, tenant_id, request.app[CLOCK]())
                       - dt.timedelta(days=7))
    report = await weekly_report(pool, tenant_id, week, _writer(request))
    return respond(WeeklyReport.model_validate(report))


def add_routes(app: web.Application) -> None:
    add(app, get_kpis, get_commentary, get_weekly_report)

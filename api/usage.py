"""`GET /v1/usage?from=&to=&group_by=meter|day|channel`, read from the ledger.

`from` and `to` are ISO dates or date-times (UTC when no offset is given); `to` is
exclusive. Defaults: the last 30 days. Both must lie between `EARLIEST` and `LATEST`
(2000-01-01 and 2100-01-01 UTC), after their offset is applied: outside it is a 422.
Units are the meters' raw units (tokens, ms, characters, segments, messages); credits
are exact decimal strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from api.context import PG_POOL
from api.errors import InvalidField
from api.models import UsageQuery, UsageReport, UsageRow
from api.operations import Reply, operation, respond
from api.requests import parse_query, require_tenant
from metering.money import format_credits

MAX_RANGE = dt.timedelta(days=400)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_GROUPS = {
    "meter": ("meter", "meter"),
    "channel": ("channel", "channel"),
    "day": ("(occurred_at AT TIME ZONE 'UTC')::date", "day"),
}


def _instant(field: str, text: str | None, default: dt.datetime) -> dt.datetime:
    if text is None or text == "":
        return default
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidField(field, "must be an ISO 8601 date or date-time") from exc
    out_of_range = InvalidField(field, f"must be between {EARLIEST.date()} and "
                                       f"{LATEST.date()} (UTC)")
    try:
        # Applying the offset first: 0001-01-01T00:00+23:59 is a day before year 1.
        value = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except OverflowError as exc:
        raise out_of_range from exc
    if not EARLIEST <= value <= LATEST:
        raise out_of_range
    return value


@operation("GET", "/v1/usage", "Usage from the ledger, grouped by meter, day or channel",
           "tenant", security="tenant", query=UsageQuery,
           responses={200: Reply("one row per group, units per meter inside it", UsageReport)},
           description="`from` and `to` lie between 2000-01-01 and 2100-01-01 (UTC); `to` is "
                       "exclusive and at most 400 days after `from`.")
async def usage_handler(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, UsageQuery)
    now = dt.datetime.now(dt.UTC)
    start = _instant("from", query.from_, now - dt.timedelta(days=30))
    end = _instant("to", query.to, now)
    if end <= start:
        raise InvalidField("to", "must be after from")
    if end - start > MAX_RANGE:
        raise InvalidField("to", f"the range may span at most {MAX_RANGE.days} days")
    expression, label = _GROUPS[query.group_by]
    rows = await request.app[PG_POOL].fetch(
        f"""SELECT {expression} AS key, meter, sum(units)::bigint AS units,
                   sum(micro_credits)::bigint AS micro
            FROM usage_events
            WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3
            GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608 - expression comes from _GROUPS
        tenant_id, start, end,
    )
    report = UsageReport.model_validate({"from": start.isoformat(), "to": end.isoformat(),
                                         "group_by": query.group_by,
                                         "rows": _group(rows, label)})
    return respond(report, exclude_unset=True)  # a row names only its own group


def _group(rows: list[Any], label: str) -> list[UsageRow]:
    """One row per key; units per meter inside it (units of different meters don't add)."""
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row["key"])
        entry = grouped.setdefault(key, {label: key, "units": {}, "micro_credits": 0})
        entry["units"][row["meter"]] = entry["units"].get(row["meter"], 0) + row["units"]
        entry["micro_credits"] += row["micro"]
    return [UsageRow(**entry, credits=format_credits(entry["micro_credits"]))
            for entry in grouped.values()]

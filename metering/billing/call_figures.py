"""The figures tariffs bill and reviews judge, read from the ledger for one cycle.

A **handled inbound call** is a phone call record (`sessions`, channel `phone`) that was
not an outbound call, that the agent answered (its record has a `first_audio_ms`: the
caller heard the agent), and that lasted: call seconds > 0. Its **billed call seconds** are
its connection time rounded up to the whole second (the default card's billing increment).
A call belongs to the cycle its start falls in (UTC). Calls refused for want of credit,
and calls that ended before the agent spoke (abandoned), are not handled.
"""

from __future__ import annotations

import uuid

import asyncpg

from metering.billing.lines import CycleUsage
from metering.billing.periods import Period
from metering.ratecard import default_rate_card

_HANDLED = """tenant_id = $1 AND channel = 'phone' AND started_at >= $2 AND started_at < $3
    AND coalesce(details->>'direction', 'inbound') = 'inbound'
    AND jsonb_typeof(details->'first_audio_ms') = 'number'
    AND coalesce((usage->>'call_seconds')::bigint, 0) > 0"""


async def handled_calls(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID,
                        period: Period) -> tuple[int, int]:
    """(handled inbound calls, their billed call seconds) in the period."""
    row = await conn.fetchrow(
        f"""SELECT count(*) AS calls, coalesce(sum(
                   ((usage->>'call_seconds')::bigint + 999) / 1000), 0)::bigint AS seconds
            FROM sessions WHERE {_HANDLED}""",  # noqa: S608
        tenant_id, period.start, period.end)
    return int(row["calls"]), int(row["seconds"])


async def cycle_usage(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID,
                      period: Period) -> CycleUsage:
    """Billed units per meter (each usage record rounded up to the meter's increment in
    the default card) and the handled calls of the cycle."""
    card = default_rate_card()
    meters = sorted(card.meters)
    rows = await conn.fetch(
        """SELECT u.meter, sum(((u.units + m.inc - 1) / m.inc) * m.inc)::bigint AS billed
           FROM usage_events u JOIN unnest($4::text[], $5::bigint[]) AS m(meter, inc)
             ON m.meter = u.meter
           WHERE u.tenant_id = $1 AND u.occurred_at >= $2 AND u.occurred_at < $3
           GROUP BY u.meter""",
        tenant_id, period.start, period.end, meters, [card.meters[m].increment for m in meters])
    calls, seconds = await handled_calls(conn, tenant_id, period)
    return CycleUsage({row["meter"]: int(row["billed"]) for row in rows}, calls, seconds)

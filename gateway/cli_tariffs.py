"""`voicegw review --period YYYY-MM` and `voicegw followups --as-of <RFC 3339>`: the monthly
tariff review and the follow-up job by hand (docs/tariffs.md).

Every gateway runs both after each month's end; these are for an operator acting now
(a running month is reviewed as preliminary and opens no task unless `--open-tasks`) and
for scenario tests that move the clock. Both print JSON and are safe beside running
gateways: one task per tenant, tariff and period, one follow-up per offer.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any

import asyncpg
import orjson

from gateway.cli_metering import command_settings
from metering.billing.errors import InvalidField
from metering.billing.reviews import review_period
from metering.billing.tasks import open_follow_ups


async def _with_pool(work: Any) -> int:
    settings = command_settings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        out = await work(pool)
    except InvalidField as exc:
        print(f"voicegw: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    async def work(pool: asyncpg.Pool) -> dict[str, Any]:
        results = await review_period(pool, period=args.period, now=dt.datetime.now(dt.UTC),
                                      open_tasks=args.open_tasks)
        return {"results": [r.to_json() for r in results]}

    return asyncio.run(_with_pool(work))


def _as_of(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be an RFC 3339 time with an offset") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("must carry an offset (Z or +01:00)")
    return moment


def cmd_followups(args: argparse.Namespace) -> int:
    async def work(pool: asyncpg.Pool) -> dict[str, Any]:
        opened = await open_follow_ups(pool, as_of=args.as_of)
        return {"opened": [task.to_json() for task in opened]}

    return asyncio.run(_with_pool(work))


def add_tariff_commands(commands: Any) -> None:
    review = commands.add_parser(
        "review", help="review cost-cap, flat-rate and per-call tariffs for a month",
        description="Review every tenant on a cost-cap, flat-rate or per-call tariff for a "
        "month (UTC) and open a task for each flagged one; prints the results as JSON. A "
        "running month is preliminary (no task unless --open-tasks); a future month exits "
        "with status 2.")
    review.add_argument("--period", required=True, help="the month, YYYY-MM")
    review.add_argument("--open-tasks", action="store_true",
                        help="open tasks for a month not yet ended")
    review.set_defaults(func=cmd_review)
    followups = commands.add_parser(
        "followups", help="open follow-up tasks for offers unanswered for 7 days",
        description="Open a follow-up task for every offer sent at least 7 days before "
        "--as-of with no outcome; prints them as JSON.")
    followups.add_argument("--as-of", required=True, type=_as_of,
                           help="the time to act at, RFC 3339 (2027-01-09T00:00:00Z)")
    followups.set_defaults(func=cmd_followups)

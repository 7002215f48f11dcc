"""`voicegw invoices close --period YYYY-MM`: finalize an ended period's invoices by hand.

Every gateway already finalizes at each cycle's end (`run_cycle` in `gateway.wiring`);
this is for an operator who wants it now, or after a migration. Idempotent: invoices
finalized before are reported as such, and no number is taken twice.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any

import asyncpg

from gateway.cli_metering import command_settings
from metering.billing.closing import close_period
from metering.billing.errors import InvalidField


async def _close_main(period: str) -> int:
    settings = command_settings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        result = await close_period(pool, period=period, now=dt.datetime.now(dt.UTC),
                                    issuer=settings.invoice_issuer)
    except InvalidField as exc:
        print(f"voicegw invoices close: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    for item in result.finalized:
        print(f"finalized {item.number} ({item.invoice_id})")
    print(f"period {result.period}: {len(result.finalized)} invoices finalized by this run")
    return 0


def cmd_invoices_close(args: argparse.Namespace) -> int:
    return asyncio.run(_close_main(args.period))


def add_billing_commands(commands: Any) -> None:
    invoices = commands.add_parser(
        "invoices", help="invoices: finalize an ended period",
        description="Invoice commands; they need VOICEGW_REDIS_URL and VOICEGW_DATABASE_URL.")
    actions = invoices.add_subparsers(dest="action", required=True, metavar="ACTION")
    close = actions.add_parser(
        "close", help="finalize every subscribed tenant's invoice of an ended period",
        description="Finalize every subscribed tenant's invoice of an ended calendar month "
        "(UTC). A running or future period is refused (exit status 2). Safe to run again "
        "and beside running gateways: one invoice per tenant and period, numbers without "
        "gaps.")
    close.add_argument("--period", required=True, help="the month to close, YYYY-MM")
    close.set_defaults(func=cmd_invoices_close)

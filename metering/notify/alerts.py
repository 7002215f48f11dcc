"""Balance alert settings per tenant: a low-balance threshold and the addresses mailed.

Where crossings are detected: in the credit scripts themselves (lua/lib.lua `alerts`),
which compare the balance after every change with the state kept in the tenant's account
hash and raise one `alert` event on the tenant's outbox stream per change of state. That
is exact (every debit and top-up is seen, not a sample), live (no polling interval), and
once across any number of gateways (a script is atomic; the sink's write is idempotent on
the stream entry id). The threshold lives in PostgreSQL (`alert_settings`, the record) and
in the account hash (what the scripts compare with); `sync_thresholds` copies it again
after Redis lost data.

- `balance.low`: the balance (available + reserved: credits not yet spent) goes below the
  threshold; again only after it was back at or above it.
- `balance.depleted` / `balance.restored`: the tenant becomes paused / not paused, by the
  one rule of `CreditStore.balance().paused` (available below the cheapest billable step).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from metering.bounds import MAX_BALANCE_CREDITS, MICRO
from metering.credit_store import CreditStore
from metering.money import format_credits
from metering.notify.errors import InvalidField
from metering.outbox import BalanceAlert

MAX_EMAILS = 10
_EMAIL = re.compile(r"^[^@\s<>,;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


@dataclass(frozen=True)
class AlertSettings:
    low_balance_credits: int | None
    emails: list[str]


def check_settings(low_balance_credits: int | None, emails: Sequence[str]) -> AlertSettings:
    if low_balance_credits is not None and (
            isinstance(low_balance_credits, bool) or not isinstance(low_balance_credits, int)
            or not 1 <= low_balance_credits <= MAX_BALANCE_CREDITS):
        raise InvalidField("low_balance_credits",
                           f"must be an integer from 1 to {MAX_BALANCE_CREDITS}, or null")
    if isinstance(emails, str) or not isinstance(emails, Sequence) or len(emails) > MAX_EMAILS:
        raise InvalidField("emails", f"must be a list of at most {MAX_EMAILS} addresses")
    for index, email in enumerate(emails):
        if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email):
            raise InvalidField(f"emails[{index}]", "is not an e-mail address")
    return AlertSettings(low_balance_credits, list(dict.fromkeys(emails)))


async def get_alerts(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> AlertSettings:
    row = await pool.fetchrow(
        "SELECT low_balance_micro, emails FROM alert_settings WHERE tenant_id = $1", tenant_id)
    if row is None:
        return AlertSettings(None, [])
    micro = row["low_balance_micro"]
    return AlertSettings(None if micro is None else micro // MICRO, list(row["emails"]))


async def put_alerts(pool: asyncpg.Pool, store: CreditStore, tenant_id: uuid.UUID, *,
                     low_balance_credits: int | None, emails: Sequence[str]) -> AlertSettings:
    """Replaces the tenant's settings (the record first, then the live threshold)."""
    settings = check_settings(low_balance_credits, emails)
    micro = None if settings.low_balance_credits is None else settings.low_balance_credits * MICRO
    await pool.execute(
        """INSERT INTO alert_settings (tenant_id, low_balance_micro, emails) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET low_balance_micro = $2, emails = $3,
                                                 updated_at = now()""",
        tenant_id, micro, settings.emails)
    await store.set_alert_threshold(str(tenant_id), micro or 0)
    return settings


async def sync_thresholds(pool: asyncpg.Pool, store: CreditStore) -> int:
    """Copies every threshold to the live store again (after Redis lost data); a threshold
    already there is left alone, state and all. How many were (re)set."""
    changed = 0
    for row in await pool.fetch("SELECT tenant_id, low_balance_micro FROM alert_settings "
                                "WHERE low_balance_micro IS NOT NULL"):
        if await store.set_alert_threshold(str(row["tenant_id"]),
                                           row["low_balance_micro"]) == "set":
            changed += 1
    return changed


_SUBJECTS = {
    "balance.low": "Your credit balance is low",
    "balance.depleted": "Your credits ran out: your agents are paused",
    "balance.restored": "Your agents are running again",
}


def alert_mail(alert: BalanceAlert) -> tuple[str, str]:
    """The subject and text of an alert's e-mail."""
    balance = format_credits(alert.available + alert.reserved)
    if alert.alert == "balance.low":
        text = (f"Your balance fell below your alert threshold of "
                f"{format_credits(alert.threshold)} credits: {balance} credits are left.")
    elif alert.alert == "balance.depleted":
        text = ("Your available credits ran out: new calls and messages are not answered "
                "until you top up.")
    else:
        text = (f"Your agents answer again: {format_credits(alert.available)} credits are "
                "available.")
    return _SUBJECTS[alert.alert], f"{text}\n\nTenant: {alert.tenant_id}\n"

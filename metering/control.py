"""Credit control for one session (a call, a chat exchange): rate as usage happens, renew
the reservation before it runs out, and say when the last grant is used up.

The session reports CUMULATIVE raw usage per meter; each report is rated as a whole
(`metering.rating`), so the cost is exact whatever the reporting rhythm. The reservation
is renewed (Gy UPDATE) when what is left of it falls below a threshold, or when half its
validity has passed (a live session must never look dead to the sweeper). A FINAL grant
is not renewed: when its credit is used up, `exhausted` turns true and the caller ends
the session (the voice agent says goodbye first; that goodbye is what the overdraft
limit is sized for).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metering.credit_store import CreditStore, Grant, Settlement
from metering.ratecard import MICRO, RateCard
from metering.rating import max_units_for_credits, rate_usage


@dataclass(frozen=True)
class SessionPolicy:
    channel: str
    slice_micro: int  # how much credit a session holds after each renewal
    renew_below_micro: int  # renew when less than this is left of the hold
    min_grant_micro: int  # below this available balance, no session starts
    validity_ms: int  # a hold not renewed within this is swept
    overdraft_limit_micro: int  # the most a session may be debited beyond its grants


# A phone minute costs about 95 credits of connection plus 300-900 credits of voice
# tokens. A slice of 600 credits lasts roughly a minute; renewal at 200 left leaves
# 15-30 s of margin for the round trip. The overdraft limit covers the goodbye said after
# the last grant ran out: ~10 s of call and ~300 output tokens.
PHONE_POLICY = SessionPolicy("phone", 600 * MICRO, 200 * MICRO, 5 * MICRO, 120_000,
                             200 * MICRO)
CHAT_POLICY = SessionPolicy("whatsapp", 100 * MICRO, 30 * MICRO, MICRO // 10, 300_000,
                            50 * MICRO)


def new_session_id(prefix: str = "ses") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class CreditSession:
    store: CreditStore
    card: RateCard
    policy: SessionPolicy
    tenant: str
    session_id: str
    clock_ms: Callable[[], int]
    meta: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    cost: int = 0  # rated cost of the cumulative usage
    reported: int = 0  # cost included in the last UPDATE
    held: int = 0  # reservation held after the last UPDATE
    final: bool = False
    open: bool = False
    last_update_ms: int = 0
    settlement: Settlement | None = None
    month_to_date: dict[str, int] = field(default_factory=dict)

    async def start(self) -> Grant:
        """Gy INITIAL. `grant.ok` false: do not start. Either the tenant cannot afford to
        (`insufficient`), or this session id was used before (`grant.replayed`: open
        elsewhere, or ended): it is not taken over, and `finish` leaves it alone."""
        now = self.clock_ms()
        # Earlier sessions' usage this month places this one in the free allowance and the
        # volume tiers. Sessions running at the same time do not see each other's usage
        # until they settle: a documented approximation, in the tenant's favour.
        self.month_to_date = await self.store.month_to_date(self.tenant, now)
        grant = await self.store.reserve(
            self.tenant, self.session_id, channel=self.policy.channel,
            requested=self.policy.slice_micro, min_grant=self.policy.min_grant_micro,
            validity_ms=self.policy.validity_ms,
            overdraft_limit=self.policy.overdraft_limit_micro, now_ms=now, meta=self.meta)
        if grant.ok:
            self.open, self.held, self.final, self.last_update_ms = True, grant.held, \
                grant.final, now
        elif grant.replayed:
            # Settled as far as this holder goes: a later `finish` must not terminate the
            # session of whoever opened it (a replayed call would end the live one).
            self.settlement = Settlement(grant.status, 0, 0, 0, {}, 0)
        return grant

    @property
    def remaining(self) -> int:
        """Credit still held for this session beyond its cost so far (may be negative)."""
        return self.held - (self.cost - self.reported)

    @property
    def exhausted(self) -> bool:
        return self.final and self.remaining <= 0

    def units_left(self, meter: str) -> int:
        """How many more raw units of `meter` the held credit buys."""
        return max_units_for_credits(self.card, meter, max(self.remaining, 0),
                                     self.usage.get(meter, 0),
                                     self.month_to_date.get(meter, 0))

    def _merge(self, usage: Mapping[str, int]) -> None:
        for meter, units in usage.items():
            self.usage[meter] = max(self.usage.get(meter, 0), units)

    async def report(self, usage: Mapping[str, int]) -> bool:
        """Records cumulative usage; renews when due. Returns `exhausted`."""
        if not self.open:
            return True
        self._merge(usage)
        self.cost = rate_usage(self.card, self.usage, month_to_date=self.month_to_date).total
        now = self.clock_ms()
        stale = now - self.last_update_ms >= self.policy.validity_ms // 2
        if stale or (not self.final and self.remaining < self.policy.renew_below_micro):
            await self._update(now)
        return self.exhausted

    async def _update(self, now: int) -> None:
        grant = await self.store.update(
            self.tenant, self.session_id, charged_total=self.cost, usage=dict(self.usage),
            target_held=self.policy.slice_micro, min_grant=self.policy.min_grant_micro,
            validity_ms=self.policy.validity_ms, now_ms=now)
        if grant.status == "unknown":  # swept or closed elsewhere: nothing more to hold
            self.open, self.final, self.held, self.reported = False, True, 0, self.cost
            return
        self.held, self.final, self.reported, self.last_update_ms = (grant.held, grant.final,
                                                                     self.cost, now)

    async def finish(self, status: str = "settled",
                     details: Mapping[str, Any] | None = None,
                     usage: Mapping[str, int] | None = None) -> Settlement:
        """Gy TERMINATE: debit the final cost (of `usage`, the final cumulative usage,
        when given), release the rest, write the record."""
        if self.settlement is not None:
            return self.settlement
        self._merge(usage or {})
        rating = rate_usage(self.card, self.usage, month_to_date=self.month_to_date)
        record = {**self.meta, **(details or {}), "charges": rating.per_meter}
        self.settlement = await self.store.terminate(
            self.tenant, self.session_id, charged_total=rating.total, usage=dict(self.usage),
            now_ms=self.clock_ms(), end_status=status, details=record)
        self.open = False
        return self.settlement

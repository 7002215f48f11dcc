"""Credit control for one session (a call, a chat exchange): rate as usage happens, renew
the reservation before it runs out, and say when the last grant is used up.

The session reports CUMULATIVE raw usage per meter; each report is rated as a whole
(`metering.rating`), so the cost is exact whatever the reporting rhythm. The reservation
is renewed (Gy UPDATE) when what is left of it falls below a threshold, or when half its
validity has passed (a live session must never look dead to the sweeper). Between
renewals, a policy with `record_every_ms` also records the usage and its cost in the
store every that many milliseconds without renewing (the `record` script): when the
gateway dies, the sweeper charges the session what it last recorded, so at most
`record_every_ms` of usage (plus one report's round trip) goes unbilled. A FINAL grant
is not renewed: when its credit is used up, `exhausted` turns true and the caller ends
the session (the voice agent says goodbye first; that goodbye is what the overdraft
limit is sized for).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metering.channels import CHAT_POLICY, PHONE_POLICY, SessionPolicy
from metering.credit_store import CreditStore, Grant, Settlement
from metering.ratecard import RateCard
from metering.rating import Rating, max_units_for_credits, rate_usage

__all__ = ["CHAT_POLICY", "PHONE_POLICY", "CreditSession", "SessionPolicy", "new_session_id"]


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
    # The record's details from the start: a session swept without a TERMINATE (its
    # gateway was lost) is recorded with these and the charges of its last report;
    # `finish` writes its own details over them.
    meta: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    cost: int = 0  # rated cost of the cumulative usage
    reported: int = 0  # cost included in the last UPDATE
    held: int = 0  # reservation held after the last UPDATE
    final: bool = False
    open: bool = False
    last_update_ms: int = 0
    last_record_ms: int = 0  # when usage last reached the store (a record or an UPDATE)
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
            self.open, self.held, self.final = True, grant.held, grant.final
            self.last_update_ms = self.last_record_ms = now
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
        """Takes cumulative usage; renews the hold when due, else records the usage in the
        store when a periodic record is due. Returns `exhausted`."""
        if not self.open:
            return True
        self._merge(usage)
        rating = rate_usage(self.card, self.usage, month_to_date=self.month_to_date)
        self.cost = rating.total
        now = self.clock_ms()
        stale = now - self.last_update_ms >= self.policy.validity_ms // 2
        if stale or (not self.final and self.remaining < self.policy.renew_below_micro):
            await self._update(now, rating)
        elif self.policy.record_every_ms > 0 and self.record_due_in_ms(now) == 0:
            await self._record(now, rating)
        return self.exhausted

    def record_due_in_ms(self, now: int | None = None) -> int:
        """Milliseconds until the next report is due to reach the store (0: now): the
        periodic record, or without one the renewal half the validity forces. Nothing is
        due of a session that is not open (then: the validity)."""
        if not self.open:
            return self.policy.validity_ms
        now = self.clock_ms() if now is None else now
        every = self.policy.record_every_ms
        if every <= 0:
            return max(self.last_update_ms + self.policy.validity_ms // 2 - now, 0)
        return max(self.last_record_ms + every - now, 0)

    def _swept_details(self, rating: Rating) -> dict[str, Any]:
        """What the record says if the session is swept after this report."""
        return {**self.meta, "charges": rating.per_meter}

    async def _record(self, now: int, rating: Rating) -> None:
        grant = await self.store.record(
            self.tenant, self.session_id, charged_total=rating.total, usage=dict(self.usage),
            now_ms=now, details=self._swept_details(rating))
        self._apply(grant, rating.total, now)

    def _apply(self, grant: Grant, cost: int, now: int) -> None:
        """What the store answered to a report of `cost` (an UPDATE or a record)."""
        if grant.status == "unknown":  # swept or closed elsewhere: nothing more to hold
            self.open, self.final, self.held, self.reported = False, True, 0, cost
            return
        self.held, self.final, self.reported, self.last_record_ms = (grant.held, grant.final,
                                                                     cost, now)

    async def _update(self, now: int, rating: Rating) -> None:
        grant = await self.store.update(
            self.tenant, self.session_id, charged_total=rating.total, usage=dict(self.usage),
            target_held=self.policy.slice_micro, min_grant=self.policy.min_grant_micro,
            validity_ms=self.policy.validity_ms, now_ms=now,
            details=self._swept_details(rating))
        self._apply(grant, rating.total, now)
        if grant.status != "unknown":
            self.last_update_ms = now

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

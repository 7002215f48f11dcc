"""The live credit store: balances and reservations in Redis, changed only by Lua scripts.

Gy-style credit control (RFC 4006): `reserve` (INITIAL) opens a session with a slice of
credit held; `update` (UPDATE) debits the cost reported so far and tops the hold up
again; `record` debits it and keeps the usage without renewing (a light report every few
seconds, so a session whose gateway died is swept with nearly all its cost); `terminate`
(TERMINATE) debits the final cost and releases the rest; `charge` is a one-shot debit.
Each script touches one tenant's hash slot and is atomic, so concurrent sessions of a
tenant can never together hold more than its balance.

Per tenant, at every moment: topped_up + granted = available + reserved + billed + expired
(granted and expired: plan credits, `metering.billing.credits`).

Overdraft bound: a session is debited at most (everything it was granted) + its
`overdraft_limit`. Cost reported beyond that is written off (recorded on the session and
the account as `written_off`, never billed), so the available balance can fall below
zero by at most the sum of the overdraft limits of the sessions that used theirs.
Time (`now_ms`) is always passed in, never read from Redis, so scenarios can move the clock.

Bounds (`metering.bounds`): every amount is checked here before a script runs, and every
script checks again before it writes; a refusal raises `OutOfBounds` (`BalanceLimit` for
a top-up the balance cannot take), never a wrapped or rounded integer. A session's cost
above MAX_CHARGE_MICRO is reported as MAX_CHARGE_MICRO: no session is ever granted more,
so nothing billable is lost.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from metering.bounds import (
    MAX_BALANCE_MICRO,
    MAX_CHARGE_MICRO,
    MAX_LIFETIME_MICRO,
    MAX_OVERDRAFT_MICRO,
    MAX_UNITS,
    BalanceLimit,
    OutOfBounds,
    check_amount,
    lua_constants,
)
from metering.channels import paused_below
from metering.keys import check_id, live_pattern, tenant_keys, tenant_of_live_key

EVENT_MARKER_TTL_S = 7 * 24 * 3600

# Told each single script call's name and how long it took, failures included (for the
# gateway's latency histogram): metering knows nothing of how it is exported.
TimingHook = Callable[[str, float], None]


def _load(name: str, paused_below: int) -> str:
    """A script with the bounds and the paused rule (balance alerts) prepended."""
    folder = resources.files("metering") / "lua"
    return "\n".join((lua_constants(), f"local PAUSED_BELOW = {int(paused_below)}",
                      (folder / "lib.lua").read_text(),
                      (folder / f"{name}.lua").read_text()))


@dataclass(frozen=True)
class Grant:
    status: str  # granted | final | exhausted | replay | closed | insufficient | unknown
    held: int
    final: bool
    expires_ms: int
    written_off: int
    billed: int

    @property
    def ok(self) -> bool:
        """This INITIAL (or UPDATE) holds credit for the caller to go on with."""
        return self.status in ("granted", "final")

    @property
    def replayed(self) -> bool:
        """The session id was used before: `replay` (open elsewhere; the grant shown is
        that session's) or `closed` (it ended and is never reopened). Not a start."""
        return self.status in ("replay", "closed")


@dataclass(frozen=True)
class Settlement:
    status: str  # settled | swept | replay | alive | unknown (or the end status given)
    billed: int
    written_off: int
    started_ms: int
    usage: dict[str, int]
    released: int


@dataclass(frozen=True)
class Charge:
    status: str  # charged | replay | insufficient (out_of_bounds raises OutOfBounds)
    micro: int


@dataclass(frozen=True)
class Balance:
    topped_up: int
    available: int
    reserved: int
    billed: int
    written_off: int
    paused: bool
    granted: int = 0  # plan credits granted
    expired: int = 0  # plan credits expired


def _non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _charged(value: int) -> int:
    """A session's cost as the scripts take it: capped at the maximum charge."""
    return min(_non_negative("charged_total", value), MAX_CHARGE_MICRO)


def _usage(value: dict[str, int] | None) -> str:
    """Usage as JSON for the scripts, every count within MAX_UNITS (cjson reads doubles)."""
    for meter, units in (value or {}).items():
        check_amount(f"usage.{meter}", units, MAX_UNITS)
    return _json_object("usage", value)


def _json_object(name: str, value: dict[str, Any] | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict")
    return orjson.dumps(value).decode()


def month_of(now_ms: int) -> str:
    return dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC).strftime("%Y-%m")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bounds_error(exc: ResponseError) -> Exception:
    """A script's OUT_OF_BOUNDS error reply as OutOfBounds; any other error unchanged."""
    message = str(exc)
    if message.startswith("OUT_OF_BOUNDS"):
        return OutOfBounds("amount", message.removeprefix("OUT_OF_BOUNDS ").split(" script:")[0])
    return exc


def _settlement(reply: list[Any]) -> Settlement:
    status, billed, written_off, started, usage_json, released = reply
    return Settlement(status.decode(), int(billed), int(written_off), int(started),
                      orjson.loads(usage_json), int(released))


@dataclass(frozen=True)
class ScriptCall:
    """One credit-control script call, ready to run alone or in a batch."""

    script: str
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], Any]


def _grant(reply: list[Any]) -> Grant:
    status, held, final, expires, written_off, billed = reply
    return Grant(status.decode(), int(held), bool(int(final)), int(expires), int(written_off),
                 int(billed))


class CreditStore:
    """One tenant-sharded credit store on a Redis connection; cheap to construct."""

    def __init__(self, redis: aioredis.Redis, prefix: str, min_billable_micro: int | None = None,
                 *, on_timing: TimingHook | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        # Paused: available below this (`metering.channels.paused_below`, the one rule);
        # every store on the same Redis must use the same value, or their balance alerts
        # would disagree. Tests may pass their own.
        if min_billable_micro is None:
            min_billable_micro = paused_below()
        self.min_billable_micro = min_billable_micro
        self.on_timing = on_timing
        self._sources = {name: _load(name, min_billable_micro) for name in
                         ("reserve", "update", "record", "terminate", "charge", "topup",
                          "rebuild", "grant", "expire", "alert_threshold")}
        self._shas: dict[str, str] = {}

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self.on_timing is None:
            return await self._checked(name, keys, args)
        started = time.perf_counter()
        try:
            return await self._checked(name, keys, args)
        finally:
            self.on_timing(name, time.perf_counter() - started)

    async def _checked(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._evalsha(name, keys, args)
        except ResponseError as exc:
            raise _bounds_error(exc) from exc

    async def _evalsha(self, name: str, keys: list[str], args: list[Any]) -> Any:
        sha = self._shas.get(name)
        if sha is not None:
            try:
                return await self.redis.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                pass  # Redis restarted or flushed its script cache: load again
        self._shas[name] = await self.redis.script_load(self._sources[name])
        return await self.redis.evalsha(self._shas[name], len(keys), *keys, *args)

    async def _ensure_loaded(self, names: set[str]) -> None:
        for name in names - set(self._shas):
            self._shas[name] = await self.redis.script_load(self._sources[name])

    async def run_batch(self, calls: list[ScriptCall]) -> list[Any]:
        """Runs many credit-control calls in one round trip (a pipeline, not a transaction:
        each script is atomic on its own). Results come back parsed, in order."""
        await self._ensure_loaded({call.script for call in calls})
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(self._shas[call.script], len(call.keys), *call.keys, *call.args)
            try:
                replies = await pipe.execute()
            except NoScriptError:
                self._shas.clear()  # the server lost its scripts: load them and run again
                return await self.run_batch(calls)
            except ResponseError as exc:
                raise _bounds_error(exc) from exc
        return [call.parse(reply) for call, reply in zip(calls, replies, strict=True)]

    def update_call(
        self, tenant: str, session_id: str, *, charged_total: int, usage: dict[str, int],
        target_held: int, min_grant: int, validity_ms: int, now_ms: int,
        details: dict[str, Any] | None = None,
    ) -> ScriptCall:
        k = tenant_keys(self.prefix, tenant)
        check_id("session id", session_id)
        for name, value in (("validity_ms", validity_ms), ("now_ms", now_ms)):
            _non_negative(name, value)
        check_amount("target_held", target_held, MAX_CHARGE_MICRO)
        check_amount("min_grant", min_grant, MAX_CHARGE_MICRO)
        return ScriptCall("update", [k.account, k.session(session_id), k.live, k.outbox],
                          [session_id, _charged(charged_total), _usage(usage),
                           target_held, min_grant, validity_ms, now_ms,
                           _json_object("details", details)], _grant)

    def record_call(
        self, tenant: str, session_id: str, *, charged_total: int, usage: dict[str, int],
        now_ms: int, details: dict[str, Any] | None = None,
    ) -> ScriptCall:
        k = tenant_keys(self.prefix, tenant)
        check_id("session id", session_id)
        return ScriptCall("record", [k.account, k.session(session_id), k.outbox],
                          [session_id, _charged(charged_total), _usage(usage),
                           _non_negative("now_ms", now_ms),
                           _json_object("details", details)], _grant)

    def reserve_call(
        self, tenant: str, session_id: str, *, channel: str, requested: int, min_grant: int,
        validity_ms: int, overdraft_limit: int, now_ms: int, meta: dict[str, Any] | None = None,
    ) -> ScriptCall:
        k = tenant_keys(self.prefix, tenant)
        check_id("session id", session_id)
        check_id("channel", channel)
        for name, value in (("validity_ms", validity_ms), ("now_ms", now_ms)):
            _non_negative(name, value)
        check_amount("requested", requested, MAX_CHARGE_MICRO)
        check_amount("min_grant", min_grant, MAX_CHARGE_MICRO)
        check_amount("overdraft_limit", overdraft_limit, MAX_OVERDRAFT_MICRO)
        return ScriptCall("reserve", [k.account, k.session(session_id), k.live, k.outbox],
                          [tenant, session_id, channel, requested, min_grant, validity_ms,
                           overdraft_limit, now_ms, _json_object("meta", meta) or "{}"], _grant)

    def terminate_call(
        self, tenant: str, session_id: str, *, charged_total: int | None,
        usage: dict[str, int] | None, now_ms: int, end_status: str = "settled",
        details: dict[str, Any] | None = None, sweep: bool = False,
    ) -> ScriptCall:
        k = tenant_keys(self.prefix, tenant)
        check_id("session id", session_id)
        check_id("end status", end_status)
        total = -1 if charged_total is None else _charged(charged_total)
        month = k.month(month_of(now_ms))
        return ScriptCall("terminate", [k.account, k.session(session_id), k.live, k.outbox,
                                        month],
                          [session_id, total, _usage(usage),
                           _non_negative("now_ms", now_ms), end_status,
                           _json_object("details", details), "sweep" if sweep else "stop"],
                          _settlement)

    async def _call(self, call: ScriptCall) -> Any:
        return call.parse(await self._run(call.script, call.keys, call.args))

    async def apply_topup(self, tenant: str, topup_id: str, micro: int) -> bool:
        """Credits a committed top-up once; False if it was applied before. Raises
        BalanceLimit when the balance would pass its maximum (nothing is credited)."""
        k = tenant_keys(self.prefix, tenant)
        check_id("topup id", topup_id)
        if check_amount("micro", micro, MAX_BALANCE_MICRO) == 0:
            raise ValueError("a top-up must add credit")
        status = _text(await self._run("topup", [k.account, k.topups, k.outbox],
                                       [topup_id, micro]))
        if status == "balance_limit":
            balance = await self.balance(tenant)
            raise BalanceLimit(balance.available + balance.reserved, micro)
        if status == "out_of_bounds":
            raise OutOfBounds("topped_up", f"the lifetime total may reach {MAX_LIFETIME_MICRO}")
        return status == "applied"

    async def reserve(
        self, tenant: str, session_id: str, *, channel: str, requested: int, min_grant: int,
        validity_ms: int, overdraft_limit: int, now_ms: int, meta: dict[str, Any] | None = None,
    ) -> Grant:
        """Gy INITIAL."""
        grant: Grant = await self._call(self.reserve_call(
            tenant, session_id, channel=channel, requested=requested, min_grant=min_grant,
            validity_ms=validity_ms, overdraft_limit=overdraft_limit, now_ms=now_ms, meta=meta))
        return grant

    async def update(
        self, tenant: str, session_id: str, *, charged_total: int, usage: dict[str, int],
        target_held: int, min_grant: int, validity_ms: int, now_ms: int,
        details: dict[str, Any] | None = None,
    ) -> Grant:
        """Gy UPDATE (`details`, when given: what the record says if the session is swept)."""
        grant: Grant = await self._call(self.update_call(
            tenant, session_id, charged_total=charged_total, usage=usage,
            target_held=target_held, min_grant=min_grant, validity_ms=validity_ms,
            now_ms=now_ms, details=details))
        return grant

    async def record(
        self, tenant: str, session_id: str, *, charged_total: int, usage: dict[str, int],
        now_ms: int, details: dict[str, Any] | None = None,
    ) -> Grant:
        """Debits the cost reported so far and keeps the usage (and `details`, what a swept
        record says), leaving the hold and its expiry alone. The grant's status is
        `recorded`, or `unknown` when the session is not open."""
        grant: Grant = await self._call(self.record_call(
            tenant, session_id, charged_total=charged_total, usage=usage, now_ms=now_ms,
            details=details))
        return grant

    async def terminate(
        self, tenant: str, session_id: str, *, charged_total: int | None,
        usage: dict[str, int] | None, now_ms: int, end_status: str = "settled",
        details: dict[str, Any] | None = None, sweep: bool = False,
    ) -> Settlement:
        """Gy TERMINATE (and the sweeper's close, with `sweep`)."""
        settled: Settlement = await self._call(self.terminate_call(
            tenant, session_id, charged_total=charged_total, usage=usage, now_ms=now_ms,
            end_status=end_status, details=details, sweep=sweep))
        return settled

    async def charge(
        self, tenant: str, event_id: str, *, channel: str, micro: int, usage: dict[str, int],
        now_ms: int,
    ) -> Charge:
        k = tenant_keys(self.prefix, tenant)
        check_id("event id", event_id)
        check_id("channel", channel)
        reply = await self._run(
            "charge", [k.account, k.event(event_id), k.outbox],
            [tenant, event_id, channel, check_amount("micro", micro, MAX_CHARGE_MICRO),
             _usage(usage), _non_negative("now_ms", now_ms), EVENT_MARKER_TTL_S])
        if reply[0] == b"out_of_bounds":
            raise OutOfBounds("billed", f"the lifetime total may reach {MAX_LIFETIME_MICRO}")
        return Charge(reply[0].decode(), int(reply[1]))

    async def month_to_date(self, tenant: str, now_ms: int) -> dict[str, int]:
        """Raw units per meter the tenant's settled sessions used this calendar month."""
        k = tenant_keys(self.prefix, tenant)
        raw = await self.redis.hgetall(k.month(month_of(now_ms)))
        return {_text(meter): int(units) for meter, units in raw.items()}

    async def balance(self, tenant: str) -> Balance:
        k = tenant_keys(self.prefix, tenant)
        raw = await self.redis.hmget(k.account, "topped_up", "available", "reserved", "billed",
                                     "written_off", "granted", "expired")
        topped_up, available, reserved, billed, written_off, granted, expired = (
            int(v or 0) for v in raw)
        return Balance(topped_up, available, reserved, billed, written_off,
                       paused=available < self.min_billable_micro, granted=granted,
                       expired=expired)

    async def session(self, tenant: str, session_id: str) -> dict[str, str]:
        k = tenant_keys(self.prefix, tenant)
        raw = await self.redis.hgetall(k.session(session_id))
        return {_text(key): _text(value) for key, value in raw.items()}

    async def live_sessions(self, tenant: str) -> list[str]:
        k = tenant_keys(self.prefix, tenant)
        return [_text(m) for m in await self.redis.zrange(k.live, 0, -1)]

    async def sweep(self, tenant: str, now_ms: int, limit: int = 500) -> list[str]:
        """Closes the tenant's sessions whose reservation expired, with the cost, usage and
        details they last reported (UPDATE or record); the held rest goes back to the
        balance. The record's status is `swept`."""
        k = tenant_keys(self.prefix, tenant)
        expired = await self.redis.zrangebyscore(k.live, "-inf", now_ms, start=0, num=limit)
        swept: list[str] = []
        for raw in expired:
            session_id = _text(raw)
            result = await self.terminate(tenant, session_id, charged_total=None, usage=None,
                                          now_ms=now_ms, end_status="swept", sweep=True)
            if result.status == "swept":
                swept.append(session_id)
            elif result.status == "unknown":  # its hash expired: drop the dangling entry
                await self.redis.zrem(k.live, session_id)
        return swept

    async def sweep_all(self, now_ms: int) -> list[str]:
        swept: list[str] = []
        async for key in self.redis.scan_iter(match=live_pattern(self.prefix), count=1000):
            tenant = tenant_of_live_key(self.prefix, _text(key))
            swept.extend(await self.sweep(tenant, now_ms))
        return swept

    async def apply_grant(self, tenant: str, grant_id: str, micro: int) -> bool:
        """Credits a committed plan-credit grant once; False if it was applied before.
        Raises BalanceLimit when the balance would pass its maximum (nothing is credited)."""
        k = tenant_keys(self.prefix, tenant)
        check_id("grant id", grant_id)
        if check_amount("micro", micro, MAX_BALANCE_MICRO) == 0:
            raise ValueError("a grant must add credit")
        status = _text(await self._run("grant", [k.account, k.plan_credits, k.outbox],
                                       [grant_id, micro]))
        if status == "balance_limit":
            balance = await self.balance(tenant)
            raise BalanceLimit(balance.available + balance.reserved, micro)
        if status == "out_of_bounds":
            raise OutOfBounds("granted", f"the lifetime total may reach {MAX_LIFETIME_MICRO}")
        return status == "applied"

    async def expire_credits(self, tenant: str, expiry_id: str, requested: int) -> int:
        """Takes up to `requested` (never more than is available) off the balance as
        expired, once per expiry id; the amount taken (a replay: the amount taken then)."""
        k = tenant_keys(self.prefix, tenant)
        check_id("expiry id", expiry_id)
        check_amount("requested", requested, MAX_BALANCE_MICRO)
        status, micro = await self._run("expire", [k.account, k.plan_credits, k.outbox],
                                        [expiry_id, requested])
        if status == b"out_of_bounds":
            raise OutOfBounds("expired", f"the lifetime total may reach {MAX_LIFETIME_MICRO}")
        return int(micro)

    async def rebuild(self, tenant: str, *, topped_up: int, billed: int,
                      topup_ids: list[str], granted: int = 0, expired: int = 0,
                      plan_credits: dict[str, int] | None = None) -> int:
        """Sets the account from ledger totals; the new available balance. Raises
        OutOfBounds (and writes nothing) for totals the account cannot hold.
        `plan_credits`: the grant and expiry ids in the ledger with their amounts."""
        k = tenant_keys(self.prefix, tenant)
        for name, value in (("topped_up", topped_up), ("billed", billed),
                            ("granted", granted), ("expired", expired)):
            check_amount(name, value, MAX_LIFETIME_MICRO)
        balance = check_amount("balance", topped_up + granted - billed - expired,
                               MAX_BALANCE_MICRO, -MAX_BALANCE_MICRO)
        pairs = [part for item in (plan_credits or {}).items() for part in item]
        status, available = await self._run(
            "rebuild", [k.account, k.topups, k.plan_credits, k.outbox],
            [topped_up, billed, balance, granted, expired, len(topup_ids), *topup_ids,
             *pairs])
        if status != b"rebuilt":
            raise OutOfBounds("balance", "the ledger's totals are beyond what the account holds")
        return int(available)

    async def set_alert_threshold(self, tenant: str, micro: int) -> str:
        """Sets the low-balance threshold the scripts compare the balance with (0 clears
        it); the current state is recorded without an event. set, unchanged or cleared."""
        k = tenant_keys(self.prefix, tenant)
        check_amount("low_balance", micro, MAX_BALANCE_MICRO)
        return _text(await self._run("alert_threshold", [k.account], [micro]))

"""Plans: what a tenant buys, in money. Versions are immutable: creating a plan whose id
exists with another definition writes a new version (the same definition again is a
replay and returns the latest version). A cycle pins the version it was opened with, so
subscribers move to a new version at their next cycle.

A plan is prepaid (the default: top-ups and included credits) or postpaid: a
`credit_limit` granted each cycle as its included credits (never rolled over; the live
credit control pauses services when it is used up) and a `tariff` whose lines the invoice
carries (`metering.billing.tariffs`, docs/tariffs.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from metering.billing.errors import InvalidField, NotFound
from metering.billing.money import Currency, currency, format_amount, parse_amount
from metering.billing.pages import Page, check_limit, decode_cursor, encode_cursor
from metering.billing.tariffs import Tariff, parse_tariff
from metering.bounds import MAX_TOPUP_CREDITS
from metering.ratecard import RateCardError, load_rate_card, rate_card_to_dict

_PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class PlanInput:
    """A plan as the operator writes it: amounts as decimal strings of `currency`."""

    id: str
    name: str
    currency: str
    setup_fee: Any
    monthly_fee: Any
    success_fee: Any
    included_credits: Any
    credit_rollover: Any
    rate_card: dict[str, Any] | None = None
    billing: Any = "prepaid"
    credit_limit: Any = None
    tariff: Any = None


@dataclass(frozen=True)
class Plan:
    id: str
    version: int
    name: str
    currency: Currency
    setup_fee: int  # minor units
    monthly_fee: int
    success_fee: int
    included_credits: int  # whole credits per cycle
    credit_rollover: bool
    rate_card: dict[str, Any] | None
    created_at: dt.datetime
    billing: str = "prepaid"
    tariff: Tariff | None = None

    @property
    def credit_limit(self) -> int | None:
        """Postpaid: the credits a tenant may use per cycle (granted at each cycle)."""
        return self.included_credits if self.billing == "postpaid" else None

    def to_json(self) -> dict[str, Any]:
        money = {name: format_amount(getattr(self, name), self.currency)
                 for name in ("setup_fee", "monthly_fee", "success_fee")}
        return {"id": self.id, "version": self.version, "name": self.name,
                "currency": self.currency.code, **money,
                "included_credits": self.included_credits,
                "credit_rollover": self.credit_rollover, "rate_card": self.rate_card,
                "created_at": self.created_at.isoformat(), "billing": self.billing,
                "credit_limit": self.credit_limit,
                "tariff": None if self.tariff is None else self.tariff.to_json(self.currency)}


@dataclass(frozen=True)
class CreatedPlan:
    plan: Plan
    created: bool  # False: the same definition was there already (a replay)


_COLUMNS = ("id, version, name, currency, setup_fee, monthly_fee, success_fee, "
            "included_credits, credit_rollover, rate_card::text AS rate_card, created_at, "
            "billing, tariff::text AS tariff")


def plan_from_row(row: asyncpg.Record) -> Plan:
    card = row["rate_card"]
    cur = currency(row["currency"])
    tariff = None if row["tariff"] is None else parse_tariff(orjson.loads(row["tariff"]), cur)
    return Plan(row["id"], row["version"], row["name"], cur,
                row["setup_fee"], row["monthly_fee"], row["success_fee"],
                row["included_credits"], row["credit_rollover"],
                None if card is None else orjson.loads(card), row["created_at"],
                row["billing"], tariff)


def _postpaid(spec: PlanInput, cur: Any) -> dict[str, Any]:
    """The members a postpaid plan adds; {} for a prepaid plan (whose stored definition,
    and so its replay hash, is as before postpaid plans existed)."""
    if spec.billing not in ("prepaid", "postpaid"):
        raise InvalidField("billing", "must be \"prepaid\" or \"postpaid\"")
    if spec.billing == "prepaid":
        for name in ("credit_limit", "tariff"):
            if getattr(spec, name) is not None:
                raise InvalidField(name, "only a postpaid plan has one")
        return {}
    limit = spec.credit_limit
    if isinstance(limit, bool) or not isinstance(limit, int) \
            or not 0 <= limit <= MAX_TOPUP_CREDITS:
        raise InvalidField("credit_limit", f"a postpaid plan needs an integer from 0 to "
                                           f"{MAX_TOPUP_CREDITS}")
    if spec.included_credits not in (0, limit):
        raise InvalidField("included_credits", "a postpaid plan's credits are its "
                                               "credit_limit")
    if spec.credit_rollover is not False:
        raise InvalidField("credit_rollover", "a postpaid plan's limit never rolls over")
    if spec.tariff is None:
        raise InvalidField("tariff", "a postpaid plan needs a tariff")
    tariff = parse_tariff(spec.tariff, cur)
    return {"included_credits": limit, "billing": "postpaid",
            "tariff": tariff.to_json(cur)}


def _validate(spec: PlanInput) -> dict[str, Any]:
    if not isinstance(spec.id, str) or not _PLAN_ID.match(spec.id):
        raise InvalidField("id", "must be 1-63 lowercase letters, digits, '-' or '_'")
    if not isinstance(spec.name, str) or not 1 <= len(spec.name) <= 200:
        raise InvalidField("name", "must be 1-200 characters")
    cur = currency(spec.currency)
    credits = spec.included_credits
    if isinstance(credits, bool) or not isinstance(credits, int) \
            or not 0 <= credits <= MAX_TOPUP_CREDITS:
        raise InvalidField("included_credits",
                           f"must be an integer between 0 and {MAX_TOPUP_CREDITS}")
    if not isinstance(spec.credit_rollover, bool):
        raise InvalidField("credit_rollover", "must be true or false")
    card = None
    if spec.rate_card is not None:
        if not isinstance(spec.rate_card, dict):
            raise InvalidField("rate_card", "must be an object")
        try:
            card = rate_card_to_dict(load_rate_card(spec.rate_card))
        except RateCardError as exc:
            raise InvalidField(f"rate_card.{exc.field}", str(exc)) from exc
    return {"name": spec.name, "currency": cur.code,
            **{name: parse_amount(name, getattr(spec, name), cur)
               for name in ("setup_fee", "monthly_fee", "success_fee")},
            "included_credits": credits, "credit_rollover": spec.credit_rollover,
            "rate_card": card, **_postpaid(spec, cur)}


async def create_plan(pool: asyncpg.Pool, spec: PlanInput, *, now: dt.datetime) -> CreatedPlan:
    """Writes version 1, or a new version when the definition differs from the latest."""
    fields = _validate(spec)
    digest = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()
    async with pool.acquire() as conn, conn.transaction():
        # Serializes writers of one plan id (versions are numbered without a race).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('plan:' || $1))", spec.id)
        latest = await conn.fetchrow(
            f"SELECT {_COLUMNS}, request_hash FROM plans WHERE id = $1 "  # noqa: S608
            "ORDER BY version DESC LIMIT 1", spec.id)
        if latest is not None and latest["request_hash"] == digest:
            return CreatedPlan(plan_from_row(latest), created=False)
        version = 1 if latest is None else latest["version"] + 1
        card = fields.pop("rate_card")
        billing = fields.pop("billing", "prepaid")
        tariff = fields.pop("tariff", None)
        row = await conn.fetchrow(
            f"""INSERT INTO plans (id, version, name, currency, setup_fee, monthly_fee,
                       success_fee, included_credits, credit_rollover, rate_card,
                       request_hash, created_at, billing, tariff)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13,
                        $14::jsonb)
                RETURNING {_COLUMNS}""",  # noqa: S608
            spec.id, version, *fields.values(),
            None if card is None else orjson.dumps(card).decode(), digest, now, billing,
            None if tariff is None else orjson.dumps(tariff).decode())
    return CreatedPlan(plan_from_row(row), created=True)


async def latest_version(conn: asyncpg.Connection | asyncpg.Pool, plan_id: str) -> Plan | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM plans WHERE id = $1 "  # noqa: S608
                              "ORDER BY version DESC LIMIT 1", plan_id)
    return None if row is None else plan_from_row(row)


async def plan_version(conn: asyncpg.Connection | asyncpg.Pool, plan_id: str,
                       version: int) -> Plan:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM plans "  # noqa: S608
                              "WHERE id = $1 AND version = $2", plan_id, version)
    if row is None:
        raise NotFound("plan version")
    return plan_from_row(row)


async def get_plan(pool: asyncpg.Pool, plan_id: str) -> Plan:
    """The latest version of a plan."""
    if not isinstance(plan_id, str) or not _PLAN_ID.match(plan_id):
        raise NotFound("plan")
    plan = await latest_version(pool, plan_id)
    if plan is None:
        raise NotFound("plan")
    return plan


async def list_plans(pool: asyncpg.Pool, *, cursor: str | None = None,
                     limit: int = 50) -> Page[Plan]:
    """The latest version of every plan, by id."""
    after = decode_cursor(cursor, 1)
    limit = check_limit(limit)
    rows = await pool.fetch(
        f"""SELECT DISTINCT ON (id) {_COLUMNS} FROM plans
            WHERE $1::text IS NULL OR id > $1
            ORDER BY id, version DESC LIMIT $2""",  # noqa: S608
        None if after is None else str(after[0]), limit + 1)
    plans = [plan_from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(plans, encode_cursor(plans[-1].id) if more else None)

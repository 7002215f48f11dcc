"""Operator tasks of the tariff review: listing them, rendering and e-mailing the offer,
recording the outcome, and the follow-up 7 days after an offer nobody answered.

Every state change of a task goes through one function here (`send_offer`,
`resolve_task`, `open_follow_ups`; `reviews.open_task` opens them; `save_template` edits
a template), so an audit record can be added in one place each.

Statuses: open -> offer_sent -> follow_up (a follow-up task opened) and, from any of
these, accepted, declined or closed (resolved: final). A follow-up task is a task of kind
`<tariff>_follow_up` with `follows_task_id`; resolving either task of the pair resolves
both. An offer is sent over SMTP while the operator waits: when the server is down the
task stays `open` with the error in `last_error`, and nothing is marked as sent; when it
is sent, the task and a `mail_outbox` row (status sent, for the record) commit together.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import asyncpg
import orjson

from metering.billing.errors import Conflict, InvalidField, MailFailed, NotFound
from metering.billing.money import currency, format_amount
from metering.billing.offer_templates import (
    KINDS,
    SUBJECTS,
    check_template,
    render,
    template_kind,
)
from metering.billing.periods import from_date, utc
from metering.billing.plans import PlanInput, create_plan, latest_version
from metering.billing.subscriptions import subscribe
from metering.credit_store import CreditStore
from metering.notify.mail import Mailer

STATUSES = ("open", "offer_sent", "follow_up", "accepted", "declined", "closed")
OUTCOMES = ("accepted", "declined", "closed")
FOLLOW_UP_AFTER = dt.timedelta(days=7)
SEND_LEASE = dt.timedelta(seconds=60)

_COLUMNS = """t.id, t.tenant_id, n.name AS tenant_name, n.billing_email, t.kind, t.tariff,
    t.period, t.status, t.plan_id, t.plan_version, t.currency, t.figures::text AS figures,
    t.offer::text AS offer, t.follows_task_id, t.offer_text, t.offer_to, t.offer_sent_at,
    t.last_error, t.outcome_note, t.resolved_at, t.applied_plan_id, t.created_at,
    (SELECT o.offer_sent_at FROM tariff_tasks o WHERE o.id = t.follows_task_id)
        AS first_offer_sent_at"""


@dataclass(frozen=True)
class Task:
    row: dict[str, Any]

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(str(self.row["id"]))

    @property
    def status(self) -> str:
        return str(self.row["status"])

    def to_json(self) -> dict[str, Any]:
        r = self.row

        def when(name: str) -> str | None:
            value = r[name]
            return None if value is None else value.isoformat()

        return {"id": str(r["id"]), "tenant_id": str(r["tenant_id"]),
                "tenant_name": r["tenant_name"], "billing_email": r["billing_email"],
                "kind": r["kind"], "tariff": r["tariff"],
                "period": str(from_date(r["period"])), "status": r["status"],
                "plan": {"id": r["plan_id"], "version": r["plan_version"]},
                "currency": r["currency"], "figures": orjson.loads(r["figures"]),
                "offer": orjson.loads(r["offer"]) or None,
                "follows_task_id": None if r["follows_task_id"] is None
                else str(r["follows_task_id"]),
                "offer_text": r["offer_text"], "offer_to": r["offer_to"],
                "offer_sent_at": when("offer_sent_at"), "last_error": r["last_error"],
                "outcome_note": r["outcome_note"], "resolved_at": when("resolved_at"),
                "applied_plan_id": r["applied_plan_id"], "created_at": when("created_at")}


async def _fetch(conn: asyncpg.Connection | asyncpg.Pool, task_id: uuid.UUID) -> Task:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tariff_tasks t "  # noqa: S608
                              "JOIN tenants n ON n.id = t.tenant_id WHERE t.id = $1", task_id)
    if row is None:
        raise NotFound("task")
    return Task(dict(row))


async def get_task(pool: asyncpg.Pool, task_id: uuid.UUID) -> Task:
    return await _fetch(pool, task_id)


async def list_tasks(pool: asyncpg.Pool, *, status: str | None = None,
                     kind: str | None = None, limit: int = 100) -> list[Task]:
    if status is not None and status not in STATUSES:
        raise InvalidField("status", f"must be one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(KINDS)}")
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM tariff_tasks t JOIN tenants n ON n.id = t.tenant_id
            WHERE ($1::text IS NULL OR t.status = $1) AND ($2::text IS NULL OR t.kind = $2)
            ORDER BY t.created_at DESC, t.id LIMIT $3""",  # noqa: S608
        status, kind, limit)
    return [Task(dict(row)) for row in rows]


# ---- templates ------------------------------------------------------------------------

async def template_text(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> str:
    text = await conn.fetchval("SELECT text FROM tariff_templates WHERE name = $1", name)
    return str(text) if text is not None else template_kind(name).default


async def list_templates(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    stored = {row["name"]: row for row in await pool.fetch(
        "SELECT name, text, updated_at FROM tariff_templates")}
    out = []
    for kind in KINDS.values():
        row = stored.get(kind.name)
        out.append({"name": kind.name, "text": kind.default if row is None else row["text"],
                    "is_default": row is None,
                    "updated_at": None if row is None else row["updated_at"].isoformat(),
                    "placeholders": {str(i): what for i, what in enumerate(kind.placeholders)}})
    return out


async def save_template(pool: asyncpg.Pool, *, name: str, text: object,
                        now: dt.datetime) -> dict[str, Any]:
    """Stores an operator's template after checking its placeholders."""
    checked = check_template(name, text)
    await pool.execute(
        """INSERT INTO tariff_templates (name, text, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET text = EXCLUDED.text,
               updated_at = EXCLUDED.updated_at""", name, checked, utc(now))
    return next(t for t in await list_templates(pool) if t["name"] == name)


# ---- rendering --------------------------------------------------------------------------

def template_values(task: Task, salutation: str) -> list[str]:
    """The values of {0}, {1}, ... for the task's kind (seed 004's numbering)."""
    figures = orjson.loads(task.row["figures"])
    offer = orjson.loads(task.row["offer"]) or {}
    first = task.row["first_offer_sent_at"]
    date = [] if first is None else [utc(first).date().isoformat()]
    period = str(from_date(task.row["period"]))
    tariff = task.row["tariff"]
    if tariff == "cost_cap":
        values = [figures["tolerance_pct"]]
    elif tariff == "flat_rate":
        values = [figures["monthly_price"], period, figures["minutes"],
                  figures["reference_price_per_minute"], offer.get("price") or ""]
    else:
        values = [figures["price_per_call"], period, str(figures["calls"]),
                  figures["minutes"], figures["reference_price_per_minute"],
                  offer.get("price") or ""]
    return [*values, *date, salutation]


def _salutation(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200 \
            or any(ord(c) < 32 for c in value):
        raise InvalidField("salutation", "must be 1-200 characters on one line")
    return value.strip()


async def render_offer(pool: asyncpg.Pool, *, task_id: uuid.UUID,
                       salutation: object) -> tuple[Task, str, str]:
    """(task, subject, text) of the task's offer as it would be sent."""
    task = await _fetch(pool, task_id)
    text = render(await template_text(pool, task.row["kind"]),
                  template_values(task, _salutation(salutation)))
    subject = SUBJECTS[task.row["tariff"]] + f" ({from_date(task.row['period'])})"
    return task, subject, text


def _check_open(task: Task) -> None:
    if task.status in OUTCOMES:
        raise Conflict("task_resolved", f"the task is {task.status}: resolved tasks take no "
                                        "offer")
    if task.status != "open":
        raise Conflict("offer_already_sent", f"the task is {task.status}: its offer was sent")


def _recipient(task: Task, to: object) -> str:
    recipient = to if to is not None else task.row["billing_email"]
    if recipient is None:
        raise InvalidField("to", "the tenant has no billing_email; give `to`")
    if not isinstance(recipient, str) or "@" not in recipient or len(recipient) > 254 \
            or any(c in " <>,\x7f" or ord(c) < 32 for c in recipient):
        raise InvalidField("to", "must be an e-mail address")
    return recipient


async def send_offer(pool: asyncpg.Pool, mailer: Mailer | None, *, task_id: uuid.UUID,
                     salutation: object, to: object, now: dt.datetime) -> Task:
    """Renders the task's template and e-mails it; on success the task is `offer_sent`
    with the text and date stored. A failed send leaves the task open with `last_error`
    and raises MailFailed."""
    now = utc(now)
    task, subject, text = await render_offer(pool, task_id=task_id, salutation=salutation)
    _check_open(task)
    recipient = _recipient(task, to)
    claimed = await pool.fetchval(
        """UPDATE tariff_tasks SET sending_until = $2 WHERE id = $1 AND status = 'open'
           AND (sending_until IS NULL OR sending_until <= $3) RETURNING true""",
        task_id, now + SEND_LEASE, now)
    if not claimed:
        raise Conflict("offer_in_flight", "this task's offer is being sent right now")
    error = None
    if mailer is None:
        error = "no SMTP server is configured (VOICEGW_SMTP_URL)"
    else:
        try:
            await mailer.send(recipient, subject, text)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    if error is not None:
        await pool.execute("UPDATE tariff_tasks SET last_error = $2, sending_until = NULL "
                           "WHERE id = $1", task_id, error)
        raise MailFailed(f"the offer was not sent: {error}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """UPDATE tariff_tasks SET status = 'offer_sent', offer_text = $2, offer_to = $3,
                   offer_sent_at = $4, last_error = NULL, sending_until = NULL
               WHERE id = $1""", task_id, text, recipient, now)
        await conn.execute(
            """INSERT INTO mail_outbox (tenant_id, dedupe_key, recipient, subject, body,
                                        status, attempts, sent_at, created_at)
               VALUES ($1, $2, $3, $4, $5, 'sent', 1, $6, $6)
               ON CONFLICT (dedupe_key) DO NOTHING""",
            task.row["tenant_id"], f"tariff-task:{task_id}:{recipient}", recipient, subject,
            text, now)
    return await _fetch(pool, task_id)


# ---- outcomes and follow-ups -----------------------------------------------------------

async def _apply_offer(pool: asyncpg.Pool, store: CreditStore, task: Task,
                       now: dt.datetime) -> str:
    """Moves the tenant to a copy of its plan with the proposed tariff, from the next
    cycle; the copy's id is the plan id with the task's id."""
    offer = orjson.loads(task.row["offer"]) or {}
    plan = await latest_version(pool, task.row["plan_id"])
    if plan is None or "tariff" not in offer:
        raise Conflict("no_offer", "the task has no proposal to apply")
    cur = currency(task.row["currency"])
    plan_id = f"{plan.id[:40]}-offer-{task.id.hex[:12]}"
    money = {name: format_amount(getattr(plan, name), cur)
             for name in ("setup_fee", "monthly_fee", "success_fee")}
    await create_plan(pool, PlanInput(
        id=plan_id, name=f"{plan.name[:150]} ({task.row['tariff']} offer "
                         f"{from_date(task.row['period'])})", currency=cur.code,
        setup_fee=money["setup_fee"], monthly_fee=money["monthly_fee"],
        success_fee=money["success_fee"], included_credits=plan.included_credits,
        credit_rollover=False, rate_card=plan.rate_card, billing="postpaid",
        credit_limit=plan.included_credits, tariff=offer["tariff"]), now=now)
    await subscribe(pool, store, tenant_id=task.row["tenant_id"], plan_id=plan_id, now=now)
    return plan_id


async def resolve_task(pool: asyncpg.Pool, store: CreditStore, *, task_id: uuid.UUID,
                       outcome: object, note: object, now: dt.datetime) -> Task:
    """Records the outcome on the task and its pair (first task and follow-up); accepted
    applies the proposed tariff from the next cycle. Again with the same outcome: the
    task as it is; another outcome on a resolved task: 409."""
    now = utc(now)
    if outcome not in OUTCOMES:
        raise InvalidField("outcome", f"must be one of {', '.join(OUTCOMES)}")
    if note is not None and (not isinstance(note, str) or len(note) > 2000
                             or "\x00" in note):
        raise InvalidField("note", "must be at most 2000 characters (no NUL)")
    task = await _fetch(pool, task_id)
    if task.status in OUTCOMES:
        if task.status == outcome:
            return task
        raise Conflict("task_resolved", f"the task is already {task.status}")
    root = task.row["follows_task_id"] or task.id
    applied = await _apply_offer(pool, store, task, now) if outcome == "accepted" else None
    await pool.execute(
        """UPDATE tariff_tasks SET status = $2, outcome_note = $3, resolved_at = $4,
               applied_plan_id = $5
           WHERE (id = $1 OR follows_task_id = $1)
             AND status NOT IN ('accepted', 'declined', 'closed')""",
        root, outcome, note, now, applied)
    return await _fetch(pool, task_id)


async def open_follow_ups(pool: asyncpg.Pool, *, as_of: dt.datetime) -> list[Task]:
    """Opens a follow-up task for each offer sent at least 7 days before `as_of` with no
    outcome; the first task's status becomes follow_up. Once per task (a unique index)."""
    as_of = utc(as_of)
    due = await pool.fetch(
        """SELECT id FROM tariff_tasks WHERE status = 'offer_sent'
           AND follows_task_id IS NULL AND offer_sent_at <= $1 ORDER BY offer_sent_at""",
        as_of - FOLLOW_UP_AFTER)
    opened = []
    for row in due:
        async with pool.acquire() as conn, conn.transaction():
            moved = await conn.fetchval(
                "UPDATE tariff_tasks SET status = 'follow_up' WHERE id = $1 "
                "AND status = 'offer_sent' RETURNING true", row["id"])
            if not moved:
                continue  # resolved meanwhile, or another gateway was first
            created = await conn.fetchval(
                """INSERT INTO tariff_tasks (id, tenant_id, kind, tariff, period, plan_id,
                       plan_version, currency, figures, offer, follows_task_id, created_at)
                   SELECT $2, tenant_id, tariff || '_follow_up', tariff, period, plan_id,
                          plan_version, currency, figures, offer, id, $3
                   FROM tariff_tasks WHERE id = $1
                   ON CONFLICT (follows_task_id) WHERE follows_task_id IS NOT NULL
                   DO NOTHING RETURNING id""", row["id"], uuid.uuid4(), as_of)
        if created is not None:
            opened.append(await _fetch(pool, uuid.UUID(str(created))))
    return opened

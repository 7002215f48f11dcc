"""The audit log: who (a user, an API key, the admin token), when, from which address,
did what to what, with what changed. Append-only (a trigger refuses UPDATE and DELETE).

`record(...)` is the one way in; every route that moves money or changes access calls it
(through `api.audit.audit`, which fills in the actor and the address from the request).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import orjson

from metering.accounts.errors import InvalidField

ActorKind = Literal["user", "api_key", "admin_token", "system"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None
    label: str | None = None  # the user's e-mail or the key's name


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Entry:
    id: int
    tenant_id: uuid.UUID | None
    at: dt.datetime
    actor: Actor
    address: str | None
    action: str
    target: str | None
    changes: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tenant_id": None if self.tenant_id is None
                else str(self.tenant_id), "at": self.at.isoformat(),
                "actor": {"kind": self.actor.kind, "id": self.actor.id,
                          "label": self.actor.label},
                "address": self.address, "action": self.action, "target": self.target,
                "changes": self.changes}


@dataclass(frozen=True)
class Page:
    items: list[Entry]
    next_cursor: str | None


async def record(db: asyncpg.Connection | asyncpg.Pool, *, tenant_id: uuid.UUID | None,
                 actor: Actor, address: str | None, action: str, target: str | None = None,
                 changes: dict[str, Any] | None = None) -> int:
    """Appends one entry (in the caller's transaction when `db` is a connection in one);
    its id. `action` is `noun.verb` (`topup.created`, `api_key.revoked`). `changes` must
    hold no secret: it is shown to the tenant."""
    entry_id: int = await db.fetchval(
        """INSERT INTO audit_log (tenant_id, actor_kind, actor_id, actor_label, address,
               action, target, changes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
           RETURNING id""",
        tenant_id, actor.kind, actor.id, actor.label, address, action, target,
        orjson.dumps(changes or {}, default=str).decode())
    return entry_id


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise InvalidField("cursor", "is not a cursor this API gave")
    return int(value)


async def list_entries(pool: asyncpg.Pool, *, tenant_id: uuid.UUID | None, all_tenants: bool,
                       since: dt.datetime | None, until: dt.datetime | None,
                       action: str | None, cursor: str | None, limit: int) -> Page:
    """Newest first. `action` matches exactly or as a prefix (`api_key` matches
    `api_key.created`). Operators read every tenant's entries (`all_tenants`)."""
    before = _cursor(cursor)
    rows = await pool.fetch(
        """SELECT id, tenant_id, at, actor_kind, actor_id, actor_label, address, action,
                  target, changes FROM audit_log
           WHERE ($1 OR tenant_id IS NOT DISTINCT FROM $2)
             AND ($3::timestamptz IS NULL OR at >= $3)
             AND ($4::timestamptz IS NULL OR at < $4)
             AND ($5::text IS NULL OR action = $5 OR action LIKE $5 || '.%')
             AND ($6::bigint IS NULL OR id < $6)
           ORDER BY id DESC LIMIT $7""",
        all_tenants, tenant_id, since, until, action, before, limit + 1)
    items = [Entry(row["id"], row["tenant_id"], row["at"],
                   Actor(row["actor_kind"], row["actor_id"], row["actor_label"]),
                   row["address"], row["action"], row["target"],
                   orjson.loads(row["changes"]) if isinstance(row["changes"], str)
                   else row["changes"]) for row in rows[:limit]]
    return Page(items, str(items[-1].id) if len(rows) > limit else None)

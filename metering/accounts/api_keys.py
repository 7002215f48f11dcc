"""A tenant's API keys: many, named, scoped (`full` or `read`), rotated with a grace
period, revoked at once. Only the SHA-256 of a key is stored; the key is shown once.

Gateways cache lookups for a short while and drop an entry when a key changes (the API
publishes the change on Redis, `api.keycache`); this module is the PostgreSQL side."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from metering.accounts.errors import Conflict, InvalidField, NotFound
from metering.tenants import API_KEY_PREFIX, hash_api_key, new_api_key

Scope = Literal["full", "read"]
SCOPES = ("full", "read")
MAX_GRACE = dt.timedelta(days=7)
MAX_KEYS = 50  # active keys per tenant
PREFIX_LENGTH = 12  # "vgw_" and 8 characters: enough to tell keys apart, useless to guess


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    scope: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(at: dt.datetime | None) -> str | None:
            return None if at is None else at.isoformat()
        return {"id": str(self.id), "name": self.name, "scope": self.scope,
                "prefix": self.prefix, "created_at": self.created_at.isoformat(),
                "last_used_at": iso(self.last_used_at), "expires_at": iso(self.expires_at)}


@dataclass(frozen=True)
class KeyMatch:
    """What a request's key resolves to."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    scope: str
    expires_at: dt.datetime | None

    def valid_at(self, now: dt.datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


_COLUMNS = ("id, tenant_id, name, scope, prefix, created_at, last_used_at, expires_at, "
            "revoked_at")


def _key(row: asyncpg.Record | dict[str, Any]) -> ApiKey:
    return ApiKey(**dict(row))


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise InvalidField("name", "must be 1-100 printable characters")
    return name


async def _insert(conn: asyncpg.Connection, tenant_id: uuid.UUID, name: str, scope: str
                  ) -> tuple[ApiKey, str]:
    count = await conn.fetchval(
        """SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())""", tenant_id)
    if count >= MAX_KEYS:
        raise Conflict("too_many_keys", f"a tenant holds at most {MAX_KEYS} keys: revoke one")
    secret = new_api_key()
    row = await conn.fetchrow(
        f"""INSERT INTO api_keys (id, tenant_id, name, scope, prefix, key_hash)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",  # noqa: S608
        uuid.uuid4(), tenant_id, name, scope, secret[:PREFIX_LENGTH], hash_api_key(secret))
    assert row is not None
    return _key(row), secret


async def create_key(pool: asyncpg.Pool, tenant_id: uuid.UUID, name: str, scope: str
                     ) -> tuple[ApiKey, str]:
    """The key and its secret (shown once)."""
    name = check_name(name)
    if scope not in SCOPES:
        raise InvalidField("scope", "must be full or read")
    async with pool.acquire() as conn, conn.transaction():
        # One tenant's key creations in turn, so the cap holds.
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        return await _insert(conn, tenant_id, name, scope)


async def list_keys(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: dt.datetime
                    ) -> list[ApiKey]:
    """The keys that work now (a rotated key until its grace period ends)."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL
            AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at, id""",  # noqa: S608
        tenant_id, now)
    return [_key(row) for row in rows]


async def _live(conn: asyncpg.Connection, tenant_id: uuid.UUID, key_id: uuid.UUID,
                now: dt.datetime) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS}, key_hash FROM api_keys WHERE id = $1 AND tenant_id = $2
            AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3) FOR UPDATE""",  # noqa: S608
        key_id, tenant_id, now)
    if row is None:
        raise NotFound("no such key (or it is revoked or expired)")
    return row


async def revoke_key(pool: asyncpg.Pool, tenant_id: uuid.UUID, key_id: uuid.UUID,
                     now: dt.datetime) -> tuple[ApiKey, bytes]:
    """The key as it was, and its hash (for the gateways' caches)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _live(conn, tenant_id, key_id, now)
        await conn.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", key_id, now)
    return _key(_without_hash(row)), bytes(row["key_hash"])


async def rotate_key(pool: asyncpg.Pool, tenant_id: uuid.UUID, key_id: uuid.UUID,
                     grace: dt.timedelta, now: dt.datetime
                     ) -> tuple[ApiKey, str, ApiKey, bytes]:
    """A successor (same name and scope) and its secret; the old key works `grace` longer
    (0 to 7 days). Returns the successor, its secret, the old key and the old key's hash."""
    if not dt.timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidField("grace_seconds", f"must be 0-{int(MAX_GRACE.total_seconds())}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        old = await _live(conn, tenant_id, key_id, now)
        if old["expires_at"] is not None:
            raise Conflict("key_rotated", "this key was already rotated; rotate its successor")
        new, secret = await _insert(conn, tenant_id, old["name"], old["scope"])
        updated = await conn.fetchrow(
            f"""UPDATE api_keys SET expires_at = $2, rotated_to = $3 WHERE id = $1
                RETURNING {_COLUMNS}""", key_id, now + grace, new.id)  # noqa: S608
    assert updated is not None
    return new, secret, _key(updated), bytes(old["key_hash"])


def _without_hash(row: asyncpg.Record) -> dict[str, Any]:
    values = dict(row)
    values.pop("key_hash", None)
    return values


async def key_for_secret(pool: asyncpg.Pool, secret: str) -> KeyMatch | None:
    """The key `secret` is, unless revoked (expiry is checked by `KeyMatch.valid_at`)."""
    if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
        return None
    return await key_for_hash(pool, hash_api_key(secret))


async def key_for_hash(pool: asyncpg.Pool, key_hash: bytes) -> KeyMatch | None:
    row = await pool.fetchrow(
        """SELECT id, tenant_id, name, scope, expires_at FROM api_keys
           WHERE key_hash = $1 AND revoked_at IS NULL""", key_hash)
    return None if row is None else KeyMatch(**dict(row))


async def mark_used(pool: asyncpg.Pool, key_id: uuid.UUID, now: dt.datetime) -> None:
    await pool.execute(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND "
        "(last_used_at IS NULL OR last_used_at < $2)", key_id, now)

"""A tenant's users and the operators: invites, roles, deletion, passwords from e-mail links.

Every link (invite or reset) is a random token whose SHA-256 alone is stored, valid 24 h
and used once; the mail carrying it is queued in the transaction that makes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from metering.accounts.errors import Conflict, InvalidField, LinkError, NotFound, RoleForbidden
from metering.accounts.passwords import hash_password, verify_password
from metering.notify.mail import enqueue_mail

TENANT_ROLES = ("owner", "admin", "billing", "analyst")
OPERATOR_ROLES = ("operator", "viewer")
LINK_TTL = dt.timedelta(hours=24)
LINK_PREFIX = "vgl_"
Purpose = Literal["invite", "reset"]
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    role: str
    active: bool  # a password is set
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "role": self.role,
                "active": self.active, "created_at": self.created_at.isoformat()}


_COLUMNS = "id, tenant_id, email, role, password_hash IS NOT NULL AS active, created_at"
_BY_EMAIL = ("SELECT id, tenant_id, email, role, password_hash IS NOT NULL AS active, "
             "created_at, password_hash FROM users WHERE lower(email) = lower($1)")


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["tenant_id"], row["email"], row["role"], row["active"],
                row["created_at"])


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not email.isprintable() or not _EMAIL.match(email):
        raise InvalidField("email", "is not an e-mail address")
    return email


def _lookup_ok(email: str) -> bool:
    """An address worth looking up (text PostgreSQL takes: no NUL, nothing unprintable)."""
    return len(email) <= 254 and email.isprintable()


def check_role(role: str, *, operator: bool) -> str:
    allowed = OPERATOR_ROLES if operator else TENANT_ROLES
    if role not in allowed:
        raise InvalidField("role", f"must be one of {', '.join(allowed)}")
    return role


def hash_link(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _may_touch(actor_role: str | None, role: str) -> None:
    """Only an owner (or the operator side, `actor_role` None) hands out or takes away
    the owner role."""
    if role == "owner" and actor_role not in (None, "owner"):
        raise RoleForbidden("only an owner may add, change or remove an owner")


async def _send_link(conn: asyncpg.Connection, user_id: uuid.UUID, tenant_id: uuid.UUID | None,
                     email: str, purpose: Purpose, link_base: str, now: dt.datetime) -> None:
    token = LINK_PREFIX + secrets.token_urlsafe(32)
    token_hash = hash_link(token)
    await conn.execute(
        """INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at)
           VALUES ($1, $2, $3, $4)""", token_hash, user_id, purpose, now + LINK_TTL)
    # The token travels in the fragment: browsers never send it to a server or a log.
    link = f"{link_base.rstrip('/')}/login#{purpose}={token}"
    if purpose == "invite":
        subject = "You are invited to voicegw"
        body = (f"You have been given access to voicegw. Choose your password here "
                f"(the link works once, for 24 hours):\n\n{link}\n")
    else:
        subject = "Reset your voicegw password"
        body = (f"Someone asked to reset the password of {email}. If it was you, choose a "
                f"new one here (the link works once, for 24 hours):\n\n{link}\n\n"
                "If not, ignore this mail: nothing changes.")
    await enqueue_mail(conn, tenant_id, [email], subject, body,
                       dedupe_key=f"{purpose}:{token_hash.hex()}")


async def invite_in(conn: asyncpg.Connection, *, tenant_id: uuid.UUID | None, email: str,
                    role: str, link_base: str, now: dt.datetime) -> User:
    """Creates the user and queues its invite, inside the caller's transaction."""
    email = check_email(email)
    check_role(role, operator=tenant_id is None)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO users (id, tenant_id, email, role) VALUES ($1, $2, $3, $4)
                RETURNING {_COLUMNS}""", uuid.uuid4(), tenant_id, email, role)  # noqa: S608
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("email_taken", "that e-mail address already has an account") from exc
    assert row is not None
    await _send_link(conn, row["id"], tenant_id, email, "invite", link_base, now)
    return _user(row)


async def invite_user(pool: asyncpg.Pool, *, tenant_id: uuid.UUID | None, email: str,
                      role: str, link_base: str, now: dt.datetime,
                      actor_role: str | None = None) -> User:
    _may_touch(actor_role, role)
    async with pool.acquire() as conn, conn.transaction():
        return await invite_in(conn, tenant_id=tenant_id, email=email, role=role,
                               link_base=link_base, now=now)


async def list_users(pool: asyncpg.Pool, tenant_id: uuid.UUID | None) -> list[User]:
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM users WHERE tenant_id IS NOT DISTINCT FROM $1
            ORDER BY created_at, id""", tenant_id)  # noqa: S608
    return [_user(row) for row in rows]


async def _locked(conn: asyncpg.Connection, tenant_id: uuid.UUID | None, user_id: uuid.UUID
                  ) -> tuple[User, int]:
    """The user, and how many owners the tenant has; every owner row locked, so two
    demotions at once cannot both pass the last-owner check."""
    owners = await conn.fetch(
        "SELECT id FROM users WHERE tenant_id = $1 AND role = 'owner' ORDER BY id FOR UPDATE",
        tenant_id)
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM users WHERE id = $1
            AND tenant_id IS NOT DISTINCT FROM $2 FOR UPDATE""", user_id, tenant_id)  # noqa: S608
    if row is None:
        raise NotFound("no such user")
    return _user(row), len(owners)


async def change_role(pool: asyncpg.Pool, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID,
                      role: str, actor_role: str | None) -> tuple[User, str]:
    """The user with its new role, and the role it had."""
    check_role(role, operator=tenant_id is None)
    _may_touch(actor_role, role)
    async with pool.acquire() as conn, conn.transaction():
        user, owners = await _locked(conn, tenant_id, user_id)
        _may_touch(actor_role, user.role)
        if user.role == "owner" and role != "owner" and owners <= 1:
            raise Conflict("last_owner", "the last owner cannot be demoted: make another "
                                         "user owner first")
        row = await conn.fetchrow(
            f"UPDATE users SET role = $2 WHERE id = $1 RETURNING {_COLUMNS}", user_id, role)  # noqa: S608
    assert row is not None
    return _user(row), user.role


async def delete_user(pool: asyncpg.Pool, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID,
                      actor_role: str | None) -> User:
    async with pool.acquire() as conn, conn.transaction():
        user, owners = await _locked(conn, tenant_id, user_id)
        _may_touch(actor_role, user.role)
        if user.role == "owner" and owners <= 1:
            raise Conflict("last_owner", "the last owner cannot be removed: make another "
                                         "user owner first")
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)  # sessions cascade
    return user


async def ensure_user(pool: asyncpg.Pool, *, tenant_id: uuid.UUID | None, email: str,
                      role: str, password: str) -> User:
    """A user with a known password, created when missing and left as it is otherwise
    (`voicegw dev`'s demo sign-ins: no invite link to follow on a laptop)."""
    email = check_email(email)
    check_role(role, operator=tenant_id is None)
    hashed = await asyncio.to_thread(hash_password, password)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO users (id, tenant_id, email, role, password_hash)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
                RETURNING {_COLUMNS}""", uuid.uuid4(), tenant_id, email, role, hashed)  # noqa: S608
        if row is None:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM users WHERE email = $1", email)  # noqa: S608
    assert row is not None
    return _user(row)


async def set_password(pool: asyncpg.Pool, *, token: str, password: str,
                       now: dt.datetime) -> User:
    """Uses an invite or reset link once: the password is set and every session of the
    user ends. Unknown: link_invalid; past 24 h: link_expired; used: link_used."""
    hashed = await asyncio.to_thread(hash_password, password)  # the rule first: 422
    async with pool.acquire() as conn, conn.transaction():
        link = await conn.fetchrow(
            "SELECT user_id, expires_at, used_at FROM user_tokens WHERE token_hash = $1 "
            "FOR UPDATE", hash_link(token))
        if link is None:
            raise LinkError("link_invalid", "this link is not valid")
        if link["used_at"] is not None:
            raise LinkError("link_used", "this link was already used; ask for a new one")
        if link["expires_at"] <= now:
            raise LinkError("link_expired", "this link has expired; ask for a new one")
        await conn.execute("UPDATE user_tokens SET used_at = $2 WHERE token_hash = $1",
                           hash_link(token), now)
        row = await conn.fetchrow(
            f"UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
            link["user_id"], hashed)
        await conn.execute("DELETE FROM user_sessions WHERE user_id = $1", link["user_id"])
    assert row is not None
    return _user(row)


async def request_reset(pool: asyncpg.Pool, *, email: str, link_base: str,
                        now: dt.datetime) -> User | None:
    """Queues a reset link when the address has an account; the caller answers the same
    either way (no account discovery)."""
    if not _lookup_ok(email):
        return None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_BY_EMAIL, email.strip())
        if row is None:
            return None
        await _send_link(conn, row["id"], row["tenant_id"], row["email"], "reset",
                         link_base, now)
    return _user(row)


async def authenticate(pool: asyncpg.Pool, email: str, password: str) -> User | None:
    """The user when the password is right; None otherwise (same time either way)."""
    row = await pool.fetchrow(_BY_EMAIL, email.strip()) if _lookup_ok(email) else None
    stored = None if row is None else row["password_hash"]
    ok = await asyncio.to_thread(verify_password, stored, password)
    return _user(row) if ok and row is not None else None

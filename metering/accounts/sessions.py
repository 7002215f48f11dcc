"""Sessions of signed-in users: a random token in an HttpOnly cookie, its SHA-256 in
PostgreSQL (so every gateway process knows it, and logout or deletion ends it at once).

The CSRF token is derived from the session token (HMAC), so it needs no storage and is
worthless without the cookie."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

SESSION_TTL = dt.timedelta(hours=12)
SESSION_PREFIX = "vgs_"


@dataclass(frozen=True)
class SessionUser:
    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    role: str
    expires_at: dt.datetime


def hash_session(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"voicegw-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token(session_token).encode(), sent.encode())


async def create_session(pool: asyncpg.Pool, user_id: uuid.UUID, address: str | None,
                         now: dt.datetime) -> tuple[str, dt.datetime]:
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires = now + SESSION_TTL
    async with pool.acquire() as conn, conn.transaction():
        # The user's ended sessions go as a new one starts: the table stays small.
        await conn.execute("DELETE FROM user_sessions WHERE user_id = $1 AND expires_at <= $2",
                           user_id, now)
        await conn.execute(
            """INSERT INTO user_sessions (token_hash, user_id, address, expires_at)
               VALUES ($1, $2, $3, $4)""", hash_session(token), user_id, address, expires)
    return token, expires


async def session_user(pool: asyncpg.Pool, token: str, now: dt.datetime) -> SessionUser | None:
    if not token.startswith(SESSION_PREFIX) or len(token) > 100:
        return None
    row = await pool.fetchrow(
        """SELECT u.id, u.tenant_id, u.email, u.role, s.expires_at
           FROM user_sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = $1 AND s.expires_at > $2""", hash_session(token), now)
    if row is None:
        return None
    return SessionUser(row["id"], row["tenant_id"], row["email"], row["role"],
                       row["expires_at"])


async def end_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute("DELETE FROM user_sessions WHERE token_hash = $1", hash_session(token))

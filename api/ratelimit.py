"""Login attempts, counted in Redis so every gateway process shares the count.

Per client address: at most ADDRESS_ATTEMPTS attempts (any outcome) per ADDRESS_WINDOW_S.
Per account (the e-mail, hashed): after ACCOUNT_FAILURES wrong passwords within
ACCOUNT_WINDOW_S, no attempt is checked until the window ends. Both answer 429
`too_many_attempts` with Retry-After, before any password is checked."""

from __future__ import annotations

import hashlib

from aiohttp import web

from api.context import REDIS, REDIS_PREFIX
from api.errors import TooManyRequests

ADDRESS_ATTEMPTS, ADDRESS_WINDOW_S = 20, 60
ACCOUNT_FAILURES, ACCOUNT_WINDOW_S = 5, 900


def _account_key(request: web.Request, email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{request.app[REDIS_PREFIX]}login:account:{digest}"


def _address_key(request: web.Request, scope: str) -> str:
    return f"{request.app[REDIS_PREFIX]}{scope}:address:{request.remote or 'unknown'}"


async def _count(request: web.Request, key: str, window_s: int) -> tuple[int, int]:
    async with request.app[REDIS].pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s, nx=True)
        pipe.ttl(key)
        count, _, ttl = await pipe.execute()
    return int(count), int(ttl)


async def check_address(request: web.Request, scope: str = "login") -> None:
    """Counts this attempt from the client's address; 429 past the limit."""
    count, ttl = await _count(request, _address_key(request, scope), ADDRESS_WINDOW_S)
    if count > ADDRESS_ATTEMPTS:
        raise TooManyRequests(
            f"too many attempts from this address: try again in {max(ttl, 1)} s", ttl)


async def check_account(request: web.Request, email: str) -> None:
    """429 while the account has had too many wrong passwords."""
    redis = request.app[REDIS]
    key = _account_key(request, email)
    failures = await redis.get(key)
    if failures is not None and int(failures) >= ACCOUNT_FAILURES:
        ttl = int(await redis.ttl(key))
        raise TooManyRequests(
            f"too many wrong passwords for this account: try again in {max(ttl, 1)} s", ttl)


async def failed(request: web.Request, email: str) -> None:
    await _count(request, _account_key(request, email), ACCOUNT_WINDOW_S)


async def succeeded(request: web.Request, email: str) -> None:
    await request.app[REDIS].delete(_account_key(request, email))

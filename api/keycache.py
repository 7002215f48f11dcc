"""API keys as every request meets them: a short local cache in front of PostgreSQL, told
of every revocation and rotation over Redis pub/sub, so a revoked key stops working in
every gateway process within a second without a database read per request.

An entry lives at most CACHE_TTL_S. While the subscription is down nothing is cached (a
change could go unheard): every request reads PostgreSQL until it is back. `last_used_at`
is written at most once per LAST_USED_EVERY_S per key and process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from api.context import PG_POOL, REDIS, REDIS_PREFIX
from metering.accounts.api_keys import KeyMatch, key_for_hash, mark_used
from metering.tenants import API_KEY_PREFIX, hash_api_key

log = logging.getLogger("voicegw.keys")

CACHE_TTL_S = 30.0
LAST_USED_EVERY_S = 60.0
MAX_ENTRIES = 10_000
RESUBSCRIBE_S = 0.5


def changes_channel(prefix: str) -> str:
    return f"{prefix}api-keys:changed"


@dataclass
class KeyCache:
    live: bool = False  # subscribed: changes are heard, entries may be kept
    # Bumped by every drop: a read that began before a change must not be cached after it.
    generation: int = 0
    entries: dict[bytes, tuple[float, KeyMatch]] = field(default_factory=dict)
    marked: dict[uuid.UUID, float] = field(default_factory=dict)

    def drop(self, key_hash: bytes) -> None:
        self.generation += 1
        self.entries.pop(key_hash, None)

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()

    async def lookup(self, app: web.Application, secret: str, now: dt.datetime
                     ) -> KeyMatch | None:
        """The key `secret` is, when it works at `now`; None otherwise."""
        if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            return None
        key_hash = hash_api_key(secret)
        clock = time.monotonic()
        cached = self.entries.get(key_hash) if self.live else None
        if cached is not None and clock - cached[0] < CACHE_TTL_S:
            match: KeyMatch | None = cached[1]
        else:
            generation = self.generation
            match = await key_for_hash(app[PG_POOL], key_hash)
            if match is not None and self.live and generation == self.generation:
                if len(self.entries) >= MAX_ENTRIES:
                    self.entries.clear()
                self.entries[key_hash] = (clock, match)
        if match is None or not match.valid_at(now):
            return None
        if clock - self.marked.get(match.id, -LAST_USED_EVERY_S) >= LAST_USED_EVERY_S:
            self.marked[match.id] = clock
            await mark_used(app[PG_POOL], match.id, now)
        return match


KEY_CACHE = web.AppKey("key_cache", KeyCache)


async def announce_change(app: web.Application, key_hash: bytes) -> None:
    """After commit: this process forgets the key now, the others when they hear it."""
    app[KEY_CACHE].drop(key_hash)
    try:
        await app[REDIS].publish(changes_channel(app[REDIS_PREFIX]), key_hash.hex())
    except Exception as exc:
        # has emptied its cache (see `_listen`), so nobody serves the old entry
        log.warning("key change not published: %r", exc)


async def _listen(app: web.Application, cache: KeyCache) -> None:
    channel = changes_channel(app[REDIS_PREFIX])
    while True:
        pubsub = app[REDIS].pubsub()
        try:
            await pubsub.subscribe(channel)
            cache.clear()  # whatever changed while not subscribed is read again
            cache.live = True
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    with contextlib.suppress(ValueError):
                        cache.drop(bytes.fromhex(text))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if cache.live:
                log.warning("api key changes unheard, not caching keys: %r", exc)
            cache.live = False
            cache.clear()
            await asyncio.sleep(RESUBSCRIBE_S)
        finally:
            cache.live = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


async def key_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the Redis client's): the cache and its listener."""
    cache = app[KEY_CACHE]
    task = asyncio.create_task(_listen(app, cache), name="api-key-changes")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_key_cache(app: web.Application) -> None:
    app[KEY_CACHE] = KeyCache()
    app.cleanup_ctx.append(key_cache_ctx)

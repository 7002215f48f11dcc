"""The live hub of one process: the tenants' open event streams (`GET /v1/live`) and the
two subscriptions that feed them.

- Balance and live sessions: every credit-control script ends by PUBLISHing the tenant
  id on one Redis channel (`metering.keys.live_channel`). The hub holds one subscriber
  per process, whatever the number of streams. A change marks the tenant dirty; a flush
  at most every `flush_s` reads its balance and live sessions once and sends the same
  snapshot to each of its streams (a burst of renewals is one event, not hundreds).
- Settled conversations: a trigger NOTIFYs `voicegw_live` with the tenant id and the
  settled conversation ids when the settling transaction commits
  (migration 0011); the hub LISTENs on one pooled connection.

Either subscription lost (Redis or PostgreSQL restarted) is taken again with a backoff,
and every stream then gets a fresh snapshot: what changed meanwhile is not lost.
A stream is a bounded queue: a client that stops reading is dropped (it reconnects and
starts from a snapshot) instead of growing the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from api.balance import balance_of
from api.context import PG_POOL, REDIS, REDIS_PREFIX
from metering.keys import live_channel, tenant_keys
from metering.money import format_credits

log = logging.getLogger("voicegw.live")

NOTIFY_CHANNEL = "voicegw_live"
QUEUE_SIZE = 64  # events a stream may fall behind before it is dropped
MAX_STREAMS = 10_000  # per process; more answer 503 live_streams_full
HEARTBEAT_S = 15.0  # a comment line on an idle stream keeps proxies from closing it
SNAPSHOT_READS = 8  # snapshots read at once (each: a few Redis and one PostgreSQL query)
REAP_S = 1.0  # how often streams are checked for a client gone
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # backoff of a lost subscription
_CLOSE = b""  # the queue item that ends a stream
_BALANCE_EVENT = b"event: balance\n"


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (data is JSON: never a raw newline inside)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(eq=False)
class Stream:
    """One client's open stream: the events waiting to be written, and its request (a
    client gone is seen on its transport: aiohttp does not cancel the handler)."""

    tenant: str
    request: web.Request | None = None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False
    balance: bool = True  # False: a role that does not see the balance (no such events)

    def visible(self, events: list[bytes]) -> list[bytes]:
        if self.balance:
            return events
        return [e for e in events if not e.startswith(_BALANCE_EVENT)]

    def put(self, chunk: bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:  # not reading: end it, it comes back with a snapshot
            self.close()

    def close(self) -> None:
        self.dropped = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(_CLOSE)
        if self.queue.full():  # make room for the end marker
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSE)


class TooManyStreams(Exception):
    pass


class LiveHub:
    """Streams by tenant, one Redis subscriber and one PostgreSQL listener per process."""

    def __init__(self, app: web.Application, *, flush_s: float = 0.2,
                 on_count: Callable[[int], None] | None = None,
                 max_streams: int = MAX_STREAMS) -> None:
        self.app = app
        self.flush_s = flush_s
        self.on_count = on_count or (lambda _count: None)
        self.max_streams = max_streams
        self.heartbeat_s = HEARTBEAT_S
        self.reap_s = REAP_S
        self.streams: dict[str, set[Stream]] = {}
        self.count = 0
        self._dirty: set[str] = set()
        self._reading: dict[str, asyncio.Future[list[bytes]]] = {}
        self._reads = asyncio.Semaphore(SNAPSHOT_READS)
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()  # both subscriptions up (tests wait for it)
        self._redis_up = False
        self._pg_up = False

    # -- streams -----------------------------------------------------------------------
    def open(self, tenant: str, request: web.Request | None = None, *,
             balance: bool = True) -> Stream:
        if self.count >= self.max_streams:
            raise TooManyStreams(f"this process holds {self.max_streams} live streams")
        stream = Stream(tenant, request, balance=balance)
        self.streams.setdefault(tenant, set()).add(stream)
        self._counted(+1)
        return stream

    def close(self, stream: Stream) -> None:
        group = self.streams.get(stream.tenant)
        if group is None or stream not in group:
            return
        group.discard(stream)
        if not group:
            del self.streams[stream.tenant]
        stream.dropped = True
        self._counted(-1)

    def close_all(self) -> None:
        """Ends every stream (shutdown): each handler writes its goodbye and returns."""
        for group in list(self.streams.values()):
            for stream in list(group):
                stream.close()

    def reap(self) -> int:
        """Ends the streams whose client went away (their handler then returns); how
        many."""
        gone = 0
        for group in list(self.streams.values()):
            for stream in list(group):
                transport = stream.request.transport if stream.request else None
                if stream.request is not None and (transport is None
                                                   or transport.is_closing()):
                    stream.close()
                    gone += 1
        return gone

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(self.reap_s)
            self.reap()

    def _counted(self, delta: int) -> None:
        self.count += delta
        self.on_count(self.count)

    # -- snapshots ---------------------------------------------------------------------
    async def snapshot(self, tenant: str) -> list[bytes]:
        """The tenant's balance and live sessions as two events. Streams of a tenant that
        ask at the same moment (a thousand tabs reconnecting) share one read, and at most
        SNAPSHOT_READS reads run at once: a burst never takes more of the stores'
        connection pools than that."""
        pending = self._reading.get(tenant)
        if pending is None:
            pending = asyncio.ensure_future(self._read(tenant))
            self._reading[tenant] = pending
            pending.add_done_callback(lambda done: self._read_done(tenant, done))
        return await asyncio.shield(pending)

    def _read_done(self, tenant: str, done: asyncio.Future[list[bytes]]) -> None:
        self._reading.pop(tenant, None)
        if not done.cancelled():
            done.exception()  # retrieved: its waiters (if any are left) got it

    async def _read(self, tenant: str) -> list[bytes]:
        async with self._reads:
            balance = await balance_of(self.app, uuid.UUID(tenant))
            sessions = await self.live_sessions(tenant)
        return [sse("balance", balance.model_dump(mode="json")),
                sse("sessions", {"sessions": sessions})]

    async def live_sessions(self, tenant: str) -> list[dict[str, Any]]:
        """Calls and text exchanges in progress: the tenant's open credit sessions."""
        redis: aioredis.Redis = self.app[REDIS]
        keys = tenant_keys(self.app[REDIS_PREFIX], tenant)
        ids = [i.decode() if isinstance(i, bytes) else str(i)
               for i in await redis.zrange(keys.live, 0, 199)]
        if not ids:
            return []
        async with redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hmget(keys.session(session_id), "channel", "started_ms", "billed",
                           "meta", "state")
            rows = await pipe.execute()
        sessions = []
        for session_id, (channel, started_ms, billed, meta, state) in zip(ids, rows,
                                                                           strict=True):
            if state != b"open":
                continue
            sessions.append(_session_view(session_id, channel, started_ms, billed, meta))
        sessions.sort(key=lambda s: str(s["started_at"]))
        return sessions

    # -- fan-out -----------------------------------------------------------------------
    def changed(self, tenant: str) -> None:
        if tenant in self.streams:
            self._dirty.add(tenant)
            self._wake.set()

    def settled(self, payload: str) -> None:
        tenant, *ids = payload.split()
        for stream in self.streams.get(tenant, ()):
            stream.put(sse("conversations", {"settled": ids}))
        if tenant in self.streams:  # the balance moved with it
            self._dirty.add(tenant)
            self._wake.set()

    def refresh_all(self) -> None:
        self._dirty.update(self.streams)
        self._wake.set()

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for tenant in dirty:
                group = self.streams.get(tenant)
                if not group:
                    continue
                try:
                    events = await self.snapshot(tenant)
                except Exception as exc:  # a store away: the next change tries again
                    log.warning("live snapshot of %s failed: %r", tenant, exc)
                    continue
                for stream in list(self.streams.get(tenant, ())):
                    for event in stream.visible(events):
                        stream.put(event)
            await asyncio.sleep(self.flush_s)  # coalesce the next burst

    # -- subscriptions -----------------------------------------------------------------
    def _up(self, redis_up: bool | None = None, pg_up: bool | None = None) -> None:
        if redis_up is not None:
            self._redis_up = redis_up
        if pg_up is not None:
            self._pg_up = pg_up
        if self._redis_up and self._pg_up:
            self.subscribed.set()
        else:
            self.subscribed.clear()

    async def _redis_subscriber(self) -> None:
        channel = live_channel(self.app[REDIS_PREFIX])
        failures = 0
        while True:
            pubsub = self.app[REDIS].pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                self._up(redis_up=True)
                if failures:
                    self.refresh_all()  # changes made while away were not heard
                failures = 0
                async for message in pubsub.listen():
                    data = message.get("data")
                    if message.get("type") == "message" and isinstance(data, bytes):
                        self.changed(data.decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._up(redis_up=False)
                log.warning("live: Redis subscription lost: %r", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.settled(payload)

    async def _pg_listener(self) -> None:
        failures = 0
        while True:
            lost = asyncio.Event()
            pool: asyncpg.Pool = self.app[PG_POOL]
            conn = None
            try:
                conn = await pool.acquire()
                conn.add_termination_listener(lambda _c, done=lost: done.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                self._up(pg_up=True)
                if failures:
                    self.refresh_all()
                failures = 0
                await lost.wait()
                log.warning("live: PostgreSQL listener lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live: PostgreSQL listener not connected: %r", exc)
            finally:
                self._up(pg_up=False)
                if conn is not None:
                    await asyncio.shield(self._release(pool, conn))
            await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1

    async def _release(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await pool.release(conn)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._redis_subscriber(), name="live-redis")
            group.create_task(self._pg_listener(), name="live-postgres")
            group.create_task(self._flusher(), name="live-flush")
            group.create_task(self._reaper(), name="live-reap")


LIVE_HUB = web.AppKey("live_hub", LiveHub)


def _session_view(session_id: str, channel: bytes | None, started_ms: bytes | None,
                  billed: bytes | None, meta: bytes | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    with contextlib.suppress(ValueError, TypeError):
        loaded = orjson.loads(meta or b"{}")
        details = loaded if isinstance(loaded, dict) else {}
    started = dt.datetime.fromtimestamp(int(started_ms or 0) / 1000, tz=dt.UTC)
    micro = int(billed or 0)
    return {"id": session_id, "channel": (channel or b"").decode(),
            "started_at": started.isoformat().replace("+00:00", "Z"),
            "customer": _masked(details), "credits": format_credits(micro),
            "micro_credits": micro}


def _masked(details: dict[str, Any]) -> str:
    """The caller as the dashboard may show it: phone meta is masked already; a text
    customer's number is masked here (never the full number on the page)."""
    if isinstance(details.get("caller"), str):
        return str(details["caller"])
    number = str(details.get("customer") or "")
    return number[:5] + "***" + number[-4:] if len(number) > 9 else "***"


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the app's hub (`LIVE_HUB`) for the app's life; on the way out, every stream
    ends with a goodbye event first."""
    hub = app[LIVE_HUB]
    task = asyncio.create_task(hub.run(), name="live-hub")
    yield
    hub.close_all()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

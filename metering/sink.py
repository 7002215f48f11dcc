"""The outbox sink: billable events leave Redis streams and land once in PostgreSQL.

Each tenant's events sit on its own stream (`<prefix>{t:<tenant>}:outbox`, in the
tenant's hash slot, so the Lua scripts that write them touch one slot). Any number of
sink processes share one consumer group. A batch is inserted in one transaction with
ON CONFLICT DO NOTHING on the event id, and acknowledged only after the commit:
delivery is at-least-once, the effect exactly-once. A consumer that died leaves its
entries pending; after `claim_idle_ms` another consumer claims and writes them. While
PostgreSQL is down nothing is acknowledged: events wait in Redis and drain when it is back.

In the same transaction the batch's notifications are written (metering.notify): a
`session.completed` webhook message per settled session of a tenant with a subscribed
endpoint (one lookup per batch; nothing for the others), and the webhook messages and
mails of the balance alerts the credit scripts raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from metering.notify.sink_events import notify_batch
from metering.outbox import EventRows, rows_from_entries

log = logging.getLogger("voicegw.sink")

GROUP = "ledger-sink"
Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class SinkStats:
    batches: int = 0
    events: int = 0
    claimed: int = 0
    failures: int = 0


@dataclass(frozen=True)
class Backlog:
    """Events waiting in the outbox streams (read, pending or not), and the oldest's age."""

    entries: int
    oldest_age_s: float


@dataclass
class Sink:
    redis: aioredis.Redis
    pool: asyncpg.Pool
    prefix: str
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    batch_size: int = 1000
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    recover_every_s: float = 5.0
    stats: SinkStats = field(default_factory=SinkStats)
    _streams: set[bytes] = field(default_factory=set)
    _recover_due: float = 0.0  # monotonic time of the next recovery pass

    # -- discovery -------------------------------------------------------------------
    async def discover(self) -> set[bytes]:
        """Finds every tenant outbox stream and makes sure our group exists on it."""
        found: set[bytes] = set()
        async for key in self.redis.scan_iter(match=f"{self.prefix}{{t:*}}:outbox", count=1000):
            found.add(key)
        for stream in found - self._streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._streams |= found
        return self._streams

    async def backlog(self) -> Backlog:
        """What waits in the streams the last discovery found (no key scan of its own).
        Written entries are deleted from their stream, so its length is what waits; the
        oldest entry's id is its Redis time of writing, compared with Redis's clock."""
        streams = sorted(self._streams)
        if not streams:
            return Backlog(0, 0.0)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for stream in streams:
                pipe.xlen(stream)
                pipe.xrange(stream, count=1)
            replies: list[Any] = await pipe.execute()
        seconds, micros = replies[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        oldest_ms = min((int(first[0][0].split(b"-")[0]) for first in replies[2::2] if first),
                        default=now_ms)
        return Backlog(sum(int(n) for n in replies[1::2]), max(now_ms - oldest_ms, 0) / 1000)

    # -- one pass --------------------------------------------------------------------
    async def drain(self) -> int:
        """Drains until a read finds nothing new. Reads and parses the next batch while
        the previous one commits, so Python and PostgreSQL work at the same time; each
        batch is still acknowledged only after its own commit."""
        streams = sorted(await self.discover())
        if not streams:
            return 0
        written = await self._recover_if_due(streams)
        committing: asyncio.Task[int] | None = None
        try:
            while batch := await self._read_fresh(streams):
                rows = rows_from_entries([e for entries in batch.values() for e in entries])
                if committing is not None:
                    written += await committing
                committing = asyncio.create_task(self._commit_and_ack(batch, rows))
            if committing is not None:
                written += await committing
                committing = None
        finally:
            if committing is not None and not committing.done():
                committing.cancel()  # rolled back: its entries stay pending, recovered later
                with contextlib.suppress(BaseException):
                    await committing
        return written

    async def _recover_if_due(self, streams: list[bytes]) -> int:
        """Our own pending entries (a pass that failed) and those of dead consumers."""
        if time.monotonic() < self._recover_due:
            return 0
        written = await self._write_and_ack(await self._own_pending(streams))
        for stream in streams:
            written += await self._write_and_ack(await self._claim_stale(stream))
        self._recover_due = time.monotonic() + self.recover_every_s
        return written

    async def _read_fresh(self, streams: list[bytes]) -> dict[bytes, list[Entry]]:
        # COUNT applies per stream: share the batch among the streams, so a batch stays
        # about `batch_size` events however many tenants there are.
        per_stream = max(10, self.batch_size // len(streams))
        fresh: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, dict.fromkeys(streams, ">"), count=per_stream, block=None,
        )
        return {s: list(e) for s, e in fresh or [] if e}

    async def _own_pending(self, streams: list[bytes]) -> dict[bytes, list[Entry]]:
        reply: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, dict.fromkeys(streams, "0"), count=self.batch_size
        )
        return {s: [e for e in entries if e[1]] for s, entries in reply or []}

    async def _claim_stale(self, stream: bytes) -> dict[bytes, list[Entry]]:
        reply: Any = await self.redis.xautoclaim(
            stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0",
            count=self.batch_size,
        )
        entries = [e for e in reply[1] if e[1]]
        self.stats.claimed += len(entries)
        # Entries deleted from the stream come back without fields: ack them away.
        gone = [e[0] for e in reply[1] if not e[1]] + list(reply[2] if len(reply) > 2 else [])
        if gone:
            await self.redis.xack(stream, GROUP, *gone)
        return {stream: entries}

    async def _write_and_ack(self, batch: dict[bytes, list[Entry]]) -> int:
        entries = [entry for stream_entries in batch.values() for entry in stream_entries]
        if not entries:
            return 0
        return await self._commit_and_ack(batch, rows_from_entries(entries))

    async def _commit_and_ack(self, batch: dict[bytes, list[Entry]], rows: EventRows) -> int:
        entries = sum(len(stream_entries) for stream_entries in batch.values())
        await self._insert(rows)
        # Acknowledge only after the commit; then drop them from the stream (kept short).
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, stream_entries in batch.items():
                if stream_entries:
                    ids = [entry_id for entry_id, _ in stream_entries]
                    pipe.xack(stream, GROUP, *ids)
                    pipe.xdel(stream, *ids)
            await pipe.execute()
        self.stats.batches += 1
        self.stats.events += entries
        if rows.rejected:
            log.error("outbox entries with unreadable fields kept aside: %s", rows.rejected)
        return entries

    async def _insert(self, rows: EventRows) -> None:
        """COPY straight into each table under a savepoint: the common case, no event seen
        before. A unique violation (a batch retried after a crash) rolls back to the
        savepoint and takes the slower path: COPY into a staging table, then INSERT ...
        ON CONFLICT DO NOTHING. Either way each event lands once."""
        async with self.pool.acquire() as conn, conn.transaction():
            for table, columns, records in rows.tables():
                if not records:
                    continue
                try:
                    async with conn.transaction():  # a savepoint
                        await conn.copy_records_to_table(table, records=records,
                                                         columns=columns)
                except asyncpg.UniqueViolationError:
                    await self._insert_skipping_duplicates(conn, table, columns, records)
            await notify_batch(conn, rows)
            if rows.rejected:
                await conn.executemany(
                    """INSERT INTO outbox_rejects (entry_id, fields) VALUES ($1, $2::jsonb)
                       ON CONFLICT DO NOTHING""",
                    rows.rejected,
                )

    @staticmethod
    async def _insert_skipping_duplicates(conn: asyncpg.Connection, table: str,
                                          columns: tuple[str, ...],
                                          records: list[tuple[Any, ...]]) -> None:
        staging = f"staging_{table}"
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) "
                           "ON COMMIT DELETE ROWS")
        await conn.copy_records_to_table(staging, records=records, columns=columns)
        names = ", ".join(columns)
        await conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "  # noqa: S608
                           "ON CONFLICT DO NOTHING")

    # -- the loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Drains until cancelled (or `stop` is set), backing off while a store is down."""
        backoff = 0.1
        while stop is None or not stop.is_set():
            try:
                written = await self.drain()
                backoff = 0.1
                if written == 0:
                    await asyncio.sleep(min(self.block_ms / 1000, 0.25))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    aioredis.RedisError) as exc:
                self.stats.failures += 1
                self._recover_due = 0.0  # what we read may be pending: recover first
                log.warning("sink pass failed (%s); events stay in Redis, retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

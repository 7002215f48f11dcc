"""The delivery worker: webhook messages leave the outbox, signed, at most
MAX_IN_FLIGHT at a time per endpoint, retried on RETRY_SCHEDULE_S with jitter.

Every gateway process runs one. Claiming happens in one short transaction: the endpoints
with due messages are locked with FOR NO KEY UPDATE SKIP LOCKED (racing workers split
them, and emitting, which only takes KEY SHARE through the foreign key, is never
blocked), and up to MAX_IN_FLIGHT less the endpoint's leased messages are leased to this
worker (`lease_until`, `lease_token`). A lease outlives the request timeout several
times, so no attempt is made twice; a worker that died mid-attempt leaves a lease that
expires and the message is tried again (receivers deduplicate on `webhook-id`, which
never changes).

An attempt succeeds on a 2xx answer within TIMEOUT_S. Anything else fails: another
status, a redirect (never followed), a timeout, a refused connection, an address the SSRF
rule forbids. After the last retry the message is given up (`failed`). An endpoint whose
attempts have failed without a success for DISABLE_AFTER is disabled and the tenant told
by e-mail. Time comes from `clock`, so tests move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from metering.notify.errors import InvalidField
from metering.notify.mail import enqueue_mail, tenant_emails, utcnow
from metering.notify.outbox import NOTIFY_CHANNEL
from metering.notify.signing import headers
from metering.notify.urls import ForbiddenAddress, GuardedResolver, check_target

log = logging.getLogger("voicegw.webhooks")

RETRY_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.1  # each delay is drawn from [delay * 0.9, delay * 1.1]
TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 4  # per endpoint, across every gateway
LEASE_S = 60.0
DISABLE_AFTER = dt.timedelta(days=3)
MAX_TASKS = 200  # deliveries one worker runs at once
LISTEN_RETRY_S = 30.0  # a worker without its LISTEN connection polls, and tries again
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Claimed:
    message_id: int
    endpoint_id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    secret: str
    webhook_id: str
    body: bytes
    attempts: int
    token: uuid.UUID


@dataclass(frozen=True)
class Result:
    ok: bool
    code: int | None
    error: str | None
    duration_ms: int


_LOCK_ENDPOINTS = """
SELECT e.id, e.url, e.secret FROM webhook_endpoints e
WHERE e.enabled AND e.id IN (
    SELECT m.endpoint_id FROM webhook_messages m WHERE m.status = 'pending'
    AND m.next_attempt_at <= $1 AND (m.lease_until IS NULL OR m.lease_until <= $1))
AND (SELECT count(*) FROM webhook_messages y               -- endpoints at their cap wait:
     WHERE y.endpoint_id = e.id AND y.lease_until > $1) < $3  -- others are not starved
LIMIT $2 FOR NO KEY UPDATE OF e SKIP LOCKED
"""

_LEASE = """
UPDATE webhook_messages m SET lease_until = $3, lease_token = $4
FROM (SELECT picked.id FROM unnest($1::uuid[]) AS ep(id) CROSS JOIN LATERAL (
        SELECT x.id FROM webhook_messages x
        WHERE x.endpoint_id = ep.id AND x.status = 'pending' AND x.next_attempt_at <= $2
          AND (x.lease_until IS NULL OR x.lease_until <= $2)
        ORDER BY x.next_attempt_at, x.id
        LIMIT greatest($5 - (SELECT count(*) FROM webhook_messages y
                             WHERE y.endpoint_id = ep.id AND y.lease_until > $2), 0)
      ) AS picked) AS chosen
WHERE m.id = chosen.id
RETURNING m.id, m.endpoint_id, m.tenant_id, m.webhook_id, m.body, m.attempts
"""


@dataclass
class DeliveryWorker:
    pool: asyncpg.Pool
    allow_private: bool = False
    clock: Clock = utcnow
    schedule: Sequence[float] = RETRY_SCHEDULE_S
    jitter: float = JITTER
    timeout_s: float = TIMEOUT_S
    max_in_flight: int = MAX_IN_FLIGHT
    lease_s: float = LEASE_S
    disable_after: dt.timedelta = DISABLE_AFTER
    endpoints_per_claim: int = 100
    poll_s: float = 0.5
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    # Set when a delivery ends (its endpoint has a free slot) or an emit committed (a
    # NOTIFY): the loop claims again at once instead of sleeping out its poll, which
    # stays only as the fallback while no LISTEN connection is up.
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _listener: asyncpg.pool.PoolConnectionProxy | None = field(default=None, init=False)
    _listen_retry_at: float = field(default=0.0, init=False)
    _lost: asyncpg.pool.PoolConnectionProxy | None = field(default=None, init=False)

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Claims and delivers until cancelled; deliveries run concurrently."""
        try:
            while True:
                claimed: list[Claimed] = []
                try:
                    if len(self._tasks) < MAX_TASKS:
                        claimed = await self.claim()
                except Exception as exc:  # the worker outlives any store failure: it
                    # is the only thing that delivers (asyncpg also raises bare
                    # InternalClientError on a connection the server just terminated)
                    log.warning("webhook claim failed: %r", exc)
                for item in claimed:
                    task = asyncio.create_task(self.deliver(item))
                    self._tasks.add(task)
                    task.add_done_callback(self._delivery_ended)
                if not claimed:
                    await self._listen()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_s)
                    self._wake.clear()
        finally:
            for task in self._tasks:
                task.cancel()  # its lease expires and the message is tried again
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._unlisten()
            await self.close()

    def _delivery_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """Holds one pooled connection that LISTENs for emits; on failure, polls and tries
        again later (a lost connection is noticed by its termination callback)."""
        loop = asyncio.get_running_loop()
        if self._lost is not None:  # give the pool back its slot (it drops a dead one)
            lost, self._lost = self._lost, None
            with contextlib.suppress(Exception):
                await self.pool.release(lost)
        if self._listener is not None or loop.time() < self._listen_retry_at:
            return
        self._listen_retry_at = loop.time() + LISTEN_RETRY_S
        try:
            conn = await self.pool.acquire()
        except Exception as exc:
            log.warning("webhook listener not connected, polling: %r", exc)
            return
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
        except BaseException as exc:  # cancelled too: the slot goes back to the pool
            with contextlib.suppress(Exception):
                await self.pool.release(conn)
            if not isinstance(exc, Exception):
                raise
            log.warning("webhook listener not connected, polling: %r", exc)
            return
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn

    def _listener_lost(self, *_: object) -> None:
        # The server closed it: the next idle pass releases it (a pooled connection never
        # released would hold a pool slot forever, and `pool.close()` would wait on it)
        # and listens again.
        self._lost, self._listener = self._listener, None
        self._listen_retry_at = 0.0  # at once: the retry delay is for failed attempts
        self._wake.set()

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        lost, self._lost = self._lost, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
        for held in (conn, lost):
            if held is not None:
                with contextlib.suppress(Exception):
                    await self.pool.release(held)

    async def deliver_due(self) -> int:
        """One pass: claims what is due and delivers it; how many attempts were made."""
        claimed = await self.claim()
        await asyncio.gather(*(self.deliver(item) for item in claimed))
        return len(claimed)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- claim -------------------------------------------------------------------------
    async def claim(self) -> list[Claimed]:
        now = self.clock()
        token = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            endpoints = {row["id"]: row for row in
                         await conn.fetch(_LOCK_ENDPOINTS, now, self.endpoints_per_claim,
                                          self.max_in_flight)}
            if not endpoints:
                return []
            rows = await conn.fetch(_LEASE, list(endpoints), now,
                                    now + dt.timedelta(seconds=self.lease_s), token,
                                    self.max_in_flight)
        return [Claimed(r["id"], r["endpoint_id"], r["tenant_id"],
                        endpoints[r["endpoint_id"]]["url"], endpoints[r["endpoint_id"]]["secret"],
                        r["webhook_id"], bytes(r["body"]), r["attempts"], token) for r in rows]

    # -- one attempt -------------------------------------------------------------------
    async def deliver(self, item: Claimed) -> None:
        try:
            await self.record(item, await self.post(item))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("webhook attempt not recorded (lease will expire): %s", exc)
        except Exception:  # a bug must not kill the worker; the lease expires, it is retried
            log.exception("webhook delivery of message %d failed", item.message_id)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.allow_private),
                                             limit=MAX_TASKS)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def post(self, item: Claimed) -> Result:
        started = time.perf_counter()
        sent_at = int(self.clock().timestamp())

        def done(ok: bool, code: int | None, error: str | None) -> Result:
            return Result(ok, code, error, int((time.perf_counter() - started) * 1000))

        try:
            check_target(item.url, allow_private=self.allow_private)
            async with self._client().post(
                item.url, data=item.body, allow_redirects=False,
                headers=headers(item.secret, item.webhook_id, sent_at, item.body),
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return done(True, response.status, None)
                if 300 <= response.status < 400:
                    return done(False, response.status, "redirect (not followed)")
                return done(False, response.status, f"HTTP {response.status}")
        except TimeoutError:
            return done(False, None, f"no answer within {self.timeout_s:g} s")
        except (ForbiddenAddress, InvalidField) as exc:
            return done(False, None, f"refused: {exc}")
        except aiohttp.ClientConnectorError as exc:  # the resolver's refusal comes wrapped
            if isinstance(exc.os_error, ForbiddenAddress):
                return done(False, None, f"refused: {exc.os_error}")
            return done(False, None, f"{type(exc).__name__}: {exc}"[:500])
        except (aiohttp.ClientError, OSError) as exc:
            return done(False, None, f"{type(exc).__name__}: {exc}"[:500])

    def _next_delay(self, attempts: int) -> float | None:
        """Seconds until the next try after `attempts` failed ones; None: give up."""
        if attempts > len(self.schedule):
            return None
        base = self.schedule[attempts - 1]
        return base * (1 + self.jitter * (2 * random.random() - 1))

    async def record(self, item: Claimed, result: Result) -> None:
        now = self.clock()
        attempts = item.attempts + 1
        delay = None if result.ok else self._next_delay(attempts)
        status = "delivered" if result.ok else ("pending" if delay is not None else "failed")
        next_at = now + dt.timedelta(seconds=delay or 0)
        async with self.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchval(
                """UPDATE webhook_messages SET attempts = $3, status = $4, next_attempt_at = $5,
                   lease_until = NULL, lease_token = NULL
                   WHERE id = $1 AND lease_token = $2 RETURNING true""",
                item.message_id, item.token, attempts, status, next_at)
            if not held:
                log.warning("webhook lease lost for message %d", item.message_id)
                return
            await conn.execute(
                """INSERT INTO webhook_attempts (message_id, endpoint_id, attempt, status,
                   response_code, error, duration_ms, attempted_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                item.message_id, item.endpoint_id, attempts,
                "succeeded" if result.ok else "failed", result.code, result.error,
                result.duration_ms, now)
            await self._endpoint_health(conn, item, result.ok, now)

    async def _endpoint_health(self, conn: asyncpg.Connection, item: Claimed, ok: bool,
                               now: dt.datetime) -> None:
        if ok:
            await conn.execute("UPDATE webhook_endpoints SET failing_since = NULL "
                               "WHERE id = $1 AND failing_since IS NOT NULL", item.endpoint_id)
            return
        disabled = await conn.fetchrow(
            """UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2),
                      enabled = enabled AND coalesce(failing_since, $2) > $2 - $3::interval,
                      disabled_at = CASE WHEN enabled AND coalesce(failing_since, $2)
                                         <= $2 - $3::interval THEN $2 ELSE disabled_at END
               WHERE id = $1 RETURNING enabled, disabled_at, url""",
            item.endpoint_id, now, self.disable_after)
        if disabled is not None and disabled["disabled_at"] == now:
            log.warning("webhook endpoint %s disabled after failing since %s",
                        item.endpoint_id, now - self.disable_after)
            await enqueue_mail(
                conn, item.tenant_id, await tenant_emails(conn, item.tenant_id),
                "Webhook endpoint disabled",
                f"Deliveries to your webhook endpoint {disabled['url']} (id "
                f"{item.endpoint_id}) have failed for {self.disable_after.days} days, so it "
                "was disabled. Its attempts are listed at "
                f"GET /v1/webhooks/{item.endpoint_id}/deliveries; create the endpoint "
                "again once the receiver works.",
                f"endpoint-disabled:{item.endpoint_id}")

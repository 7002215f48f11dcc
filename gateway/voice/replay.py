"""One conversation per call, ever: a `CallSid` is answered once and streamed once.

Twilio's webhook signature carries no timestamp, so whoever saw one signed
`POST /twilio/voice` can post it again, and a stream token is good for any stream of its
call. Three layers keep a replay from running a second (or a free) conversation:

- the webhook claims `<prefix>call:<CallSid>` before it answers; a second webhook for the
  call (live or settled) gets a spoken hang-up and no stream token;
- the media stream claims `<prefix>call:<CallSid>:stream` once its token checked out; a
  second stream of the call, even with a freshly issued valid token, is closed 1008;
- the credit store never reopens a session: INITIAL for a session id seen before answers
  `replay` (still open) or `closed` (ended), and neither starts a call.

Each claim is one `SET NX EX` of one key, so it is atomic and lives on any one hash slot of
a Redis Cluster. The claims last `CALL_CLAIM_TTL_S` (7 days): longer than any call (Twilio
caps a call's length at hours, not days), its settlement (a dead gateway's hold is swept
within minutes), and the outbox's delivery of its record to PostgreSQL even after a sink
outage of days. A webhook replayed after its claim expired is
still refused: the call's settled record is looked up when the claim is new.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Literal

import asyncpg
import redis.asyncio as aioredis

from gateway.logs import call_id_var
from gateway.metrics import Metrics

log = logging.getLogger("voicegw.voice")

CALL_CLAIM_TTL_S = 7 * 24 * 3600
Stage = Literal["webhook", "stream", "session"]


def call_session_id(call_sid: str) -> str:
    """The credit session (and call record) id of a call."""
    return f"call_{call_sid}"


def is_call_sid(value: str) -> bool:
    """Twilio's call ids are `CA` and 32 hex digits; this accepts `CA` and ASCII letters and
    digits up to 64 characters, which bounds what may name a Redis key and a session id."""
    return value.startswith("CA") and value.isascii() and value.isalnum() and len(value) <= 64


def claim_key(prefix: str, call_sid: str, stage: Literal["webhook", "stream"]) -> str:
    return f"{prefix}call:{call_sid}" if stage == "webhook" else f"{prefix}call:{call_sid}:{stage}"


async def claim(redis: aioredis.Redis, prefix: str, call_sid: str,
                stage: Literal["webhook", "stream"]) -> bool:
    """True for the first claimant of this stage of the call, false for every later one."""
    claimed = await redis.set(claim_key(prefix, call_sid, stage), int(time.time()), nx=True,
                              ex=CALL_CLAIM_TTL_S)
    return bool(claimed)


async def release_webhook(redis: aioredis.Redis, prefix: str, call_sid: str) -> None:
    """Undoes a webhook claim whose answer never went out (the webhook failed), so Twilio's
    retry or fallback URL can still answer the call. Best effort: a store that failed the
    webhook may fail this too, and then the call is refused as a replay."""
    with contextlib.suppress(Exception):
        await redis.delete(claim_key(prefix, call_sid, "webhook"))


async def answered_once(redis: aioredis.Redis, pool: asyncpg.Pool, prefix: str,
                        call_sid: str) -> bool:
    """Claims the call for this webhook: false when it was answered before (its claim is
    held, or its claim expired and the call has a settled record)."""
    if not await claim(redis, prefix, call_sid, "webhook"):
        return False
    try:
        recorded = await pool.fetchval("SELECT EXISTS (SELECT 1 FROM sessions "
                                       "WHERE session_id = $1)", call_session_id(call_sid))
    except Exception:
        await release_webhook(redis, prefix, call_sid)
        raise
    return not recorded


def refused_replay(metrics: Metrics, call_sid: str, stage: Stage) -> None:
    """Logs and counts a refused replay of a call's webhook, stream or credit session."""
    call_id_var.set(call_sid)  # the log field, unmasked (a CallSid is not a phone number)
    log.warning("replayed %s refused: the call was answered before", stage,
                extra={"event": "replay"})
    metrics.replays.labels(channel="phone", stage=stage).inc()

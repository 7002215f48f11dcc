"""WhatsApp and SMS conversations (metering.conversations): the messages with one
customer on one channel without a pause longer than the tenant's
`conversation_idle_minutes` are one conversation, counted from its first message.

Hooks of the exchange (`gateway.messaging.exchange`): `customer_message` groups an inbound
message (and its charge) into the open conversation or a new one; `agent_replied` adds
the reply, its tool calls and its credits; `ended_by_agent` closes the conversation when
the agent called `end_call`. `rating_reply` takes a 1-5 answer to the rating question.

The job (`run_conversation_jobs`, every `JOB_EVERY_S`) closes the conversations idle
past their window, tries again what follows a close for a conversation left without a
summary (its process died, or the LLM failed; for an hour), settles the conversations
of calls whose gateway died (from their swept credit session), and deletes transcripts
past `transcript_retention_days` (every channel). After a close (`after_close`): the
summary (LLM, metered on `summary_tokens` as a one-shot charge `sum-<conversation>`),
the `session.completed` webhook of the conversation, and the rating question when the
tenant set `csat_enabled`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import uuid
from typing import Any

from aiohttp import web

from agents.summary import summarize
from agents.text_agent import AgentReply
from gateway.codecs.sms_segments import count_segments
from gateway.messaging import store as messages
from gateway.messaging.deps import MESSAGING, Messaging, TenantProfile
from gateway.messaging.store import Inbound, Outbound
from metering.cards import card_for_tenant
from metering.conversations import store
from metering.conversations.masking import mask_text
from metering.conversations.settings import TenantSettings, settings_of
from metering.conversations.store import Settled, TextCustomer
from metering.messages import outbound_usage
from metering.meters import Meter
from metering.money import format_credits
from metering.notify.outbox import emit
from metering.rating import rate_usage

log = logging.getLogger("voicegw.messaging")

JOB_EVERY_S = 15.0
CSAT_TEXT = ("Thank you for writing to us. How satisfied were you? Reply with a number from "
             "1 (not satisfied) to 5 (very satisfied).")
_RATING = re.compile(r"[1-5]")


def address(channel: str, customer: str) -> str:
    """One form for one person on every channel (WhatsApp ids come without the `+`), so
    the per-tenant hash finds the same customer on the phone, WhatsApp and SMS."""
    return customer if customer.startswith("+") else f"+{customer}"


def customer_hash(tenant: str, number: str) -> str:
    """The phone channel's caller hash (gateway.voice.stream.caller_hash), the same value."""
    return hashlib.sha256(f"{tenant}:{number}".encode()).hexdigest()[:24]


def mask_number(number: str) -> str:
    return number[:5] + "***" + number[-4:] if len(number) > 9 else "***"


def who(msg: Inbound) -> TextCustomer:
    number = address(msg.channel, msg.customer)
    return TextCustomer(msg.tenant_id, msg.channel, customer_hash(str(msg.tenant_id), number),
                        mask_number(number))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_rating(text: str) -> int | None:
    """A reply that is a rating: a short message with exactly one digit, 1 to 5."""
    digits = re.findall(r"\d", text)
    if len(text.strip()) > 60 or len(digits) != 1 or not _RATING.fullmatch(digits[0]):
        return None
    return int(digits[0])


async def rating_reply(m: Messaging, msg: Inbound, profile: TenantProfile) -> bool:
    """True when the message answered the rating question (recorded once)."""
    if not profile.settings.csat_enabled or msg.body is None:
        return False
    rating = parse_rating(msg.body)
    if rating is None:
        return False
    customer = who(msg)
    if not await store.awaiting_rating(m.pool, customer, msg.vendor_time):
        return False
    return await store.record_text_rating(m.pool, customer, rating, msg.vendor_time) is not None


async def customer_message(m: Messaging, msg: Inbound, profile: TenantProfile,
                           charged_micro: int) -> uuid.UUID:
    item = store.turn("customer", msg.body or "", msg.vendor_time, msg.vendor_time,
                      key=f"in:{msg.vendor_id}")
    return await store.customer_turn(
        m.pool, who(msg), at=msg.vendor_time,
        idle_minutes=profile.settings.conversation_idle_minutes, session_id=msg.exchange_id,
        item=item, micro_credits=charged_micro, mask=profile.settings.mask_transcripts)


async def agent_replied(m: Messaging, conversation_id: uuid.UUID, msg: Inbound,
                        profile: TenantProfile, reply: AgentReply, text: str,
                        billed: int) -> None:
    now = _now()
    item = store.turn("agent", text, now, now, key=f"out:{msg.vendor_id}")
    await store.agent_turn(m.pool, conversation_id, item=item, tool_calls=reply.tool_log,
                           micro_credits=billed, resolved=reply.resolved,
                           mask=profile.settings.mask_transcripts)


async def credits_only(m: Messaging, conversation_id: uuid.UUID, billed: int) -> None:
    """An exchange that billed tokens but sent no reply: its credits count all the same."""
    await store.add_credits(m.pool, conversation_id, billed)


async def ended_by_agent(m: Messaging, conversation_id: uuid.UUID) -> None:
    settled = await store.close_text(m.pool, now=_now(), conversation_id=conversation_id)
    await after_close(m, settled)


# -- after a close ----------------------------------------------------------------------

async def _summary_of(m: Messaging, c: Settled, settings: TenantSettings) -> str | None:
    summary = await summarize(m.agent.client, m.agent.model, c.transcript, c.tool_calls)
    if summary is None:
        return None
    card = await card_for_tenant(m.pool, c.tenant_id)
    usage = {Meter.SUMMARY_TOKENS.value: summary.tokens}
    if summary.tokens:
        micro = rate_usage(card, usage).total
        await m.credits.charge(str(c.tenant_id), f"sum-{c.id}", channel=c.channel,
                               micro=micro, usage=usage, now_ms=m.clock_ms())
    text = mask_text(summary.text) if settings.mask_transcripts else summary.text
    await store.save_summary(m.pool, c.id, text)
    return text


async def _completed_webhook(m: Messaging, c: Settled, summary: str | None) -> None:
    async with m.pool.acquire() as conn, conn.transaction():
        outcomes = [{"event_id": r["event_id"], "kind": r["kind"],
                     "record_id": str(r["record_id"])} for r in await conn.fetch(
            "SELECT event_id, kind, record_id FROM success_events WHERE tenant_id = $1 "
            "AND session_id = ANY($2::text[]) ORDER BY occurred_at", c.tenant_id,
            c.session_ids)]
        data: dict[str, Any] = {
            "session_id": f"conv_{c.id.hex}", "conversation_id": str(c.id),
            "channel": c.channel, "status": "settled", "disposition": c.disposition,
            "call_sid": None, "started_at": c.started_at.isoformat(),
            "ended_at": c.ended_at.isoformat(),
            "duration_ms": int((c.ended_at - c.started_at).total_seconds() * 1000),
            "credits": format_credits(c.micro_credits), "micro_credits": c.micro_credits,
            "outcomes": outcomes, "summary": summary}
        await emit(conn, c.tenant_id, "session.completed", data, f"conv-{c.id}", c.ended_at)


async def _ask_rating(m: Messaging, c: Settled) -> None:
    last_in = next((t.get("key") for t in reversed(c.transcript)
                    if str(t.get("key", "")).startswith("in:")), None)
    if last_in is None:
        return
    row = await m.pool.fetchrow(
        "SELECT business, customer FROM messages WHERE channel = $1 AND vendor_id = $2",
        c.channel, last_in.removeprefix("in:"))
    if row is None or not await store.mark_csat_asked(m.pool, c.id, _now()):
        return
    segments = count_segments(CSAT_TEXT) if c.channel == "sms" else None
    card = await card_for_tenant(m.pool, c.tenant_id)
    usage = outbound_usage(c.channel, segments)
    charge = await m.credits.charge(str(c.tenant_id), f"csat-{c.id}", channel=c.channel,
                                    micro=rate_usage(card, usage).total, usage=usage,
                                    now_ms=m.clock_ms())
    if charge.status == "insufficient":
        log.info("rating question not sent: no credit", extra={"tenant_id": str(c.tenant_id)})
        return
    if c.channel == "whatsapp":
        sent = await m.graph.send_text(row["business"], row["customer"], CSAT_TEXT)
    else:
        sent = await m.twilio.send(row["business"], row["customer"], CSAT_TEXT)
    if sent.ok and sent.vendor_id is not None:
        await messages.record_outbound(m.pool, Outbound(
            c.channel, sent.vendor_id, c.tenant_id, row["business"], row["customer"],
            "csat", CSAT_TEXT, segments))


async def after_close(m: Messaging, settled: list[Settled]) -> None:
    for c in settled:
        try:
            settings = await settings_of(m.pool, c.tenant_id) or TenantSettings()
            summary = await _summary_of(m, c, settings)
            await _completed_webhook(m, c, summary)
            if settings.csat_enabled:
                await _ask_rating(m, c)
        except Exception:
            log.exception("after closing conversation %s", c.id)


# -- the job ---------------------------------------------------------------------------

async def conversation_pass(m: Messaging, now: dt.datetime | None = None) -> int:
    """One pass: idle text conversations closed (and summarized, rated, announced),
    transcripts past their retention deleted. Returns how many were closed."""
    now = now or _now()
    closed = await store.close_text(m.pool, now=now)
    await after_close(m, closed)
    await after_close(m, await store.unsummarized(m.pool, now=now))
    lost = await store.settle_lost_calls(m.pool, now=now)
    if lost:
        log.warning("settled %d conversations of calls whose gateway was lost", len(lost))
    purged = await store.purge_transcripts(m.pool, now=now)
    if purged:
        log.info("deleted %d transcripts past their retention", purged)
    return len(closed)


async def run_conversation_jobs(app: web.Application) -> None:
    m = app[MESSAGING]
    while True:
        await asyncio.sleep(JOB_EVERY_S)
        try:
            await conversation_pass(m)
        except Exception as exc:
            log.warning("conversation job pass failed: %s", exc)

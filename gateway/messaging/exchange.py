"""Answering one inbound message (the exchange), after the webhook was acknowledged.

    charge the message in -> open the WhatsApp window -> paused? notice, stop
    -> reserve credit -> text agent (LLM + tools) -> cut an SMS reply to what is affordable
    -> `sending` (fenced) -> vendor send -> settle the credit session -> `replied`

Every step is safe to run again on a later attempt (a crash, a takeover): the inbound
charge is idempotent on its event id, tool outcomes on (exchange, ordinal), and the
fenced `sending` transition lets only one attempt send. A crash between `sending` and
the vendor's answer leaves the row `sending`; the recovery loop marks it `unknown` and
does not send again (docs/messaging.md: at most one reply).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from agents.text_agent import AgentReply, AgentUnavailable, TextTurn
from gateway.codecs.sms_segments import count_segments, truncate_to_segments
from gateway.messaging import conversations, store
from gateway.messaging.deps import Messaging, TenantProfile
from gateway.messaging.store import Inbound, Outbound
from gateway.messaging.vendors import Sent
from metering.channels import channel_policy, needed_to_run, sms_segment_micro
from metering.control import CreditSession
from metering.messages import (
    ChargeStatus,
    MessageCharge,
    affordable_reply_segments,
    charge_inbound_message,
    record_free_notice,
    reply_usage,
)

log = logging.getLogger("voicegw.messaging")

MAX_ATTEMPTS = 3
RETRY_DELAY_S = 15.0
PROCESS_TIMEOUT_S = 90.0  # well inside the lease (store.LEASE_S)


async def deliver(m: Messaging, channel: str, business: str, customer: str, text: str) -> Sent:
    if channel == "whatsapp":
        return await m.graph.send_text(business, customer, text)
    return await m.twilio.send(business, customer, text)


async def _end(m: Messaging, msg: Inbound, state: str, error: Any = None) -> str:
    await store.move(m.pool, msg, state, error=error)
    m.handled.labels(channel=msg.channel, outcome=state).inc()
    return state


async def _keep_if_pending(m: Messaging, channel: str, vendor_id: str,
                           charge: MessageCharge) -> None:
    """A charge the balance cannot cover is marked pending and retried (like number fees)."""
    if charge.status is ChargeStatus.PENDING:
        await store.set_charge_pending(m.pool, channel, vendor_id, True)


async def charge_inbound(m: Messaging, msg: Inbound, profile: TenantProfile) -> int:
    """The message's charge; returns the micro-credits billed (0 while pending)."""
    charge = await charge_inbound_message(
        m.credits, card=profile.card, tenant=str(msg.tenant_id), channel=msg.channel,
        vendor_id=msg.vendor_id, segments=msg.segments, now_ms=m.clock_ms())
    await _keep_if_pending(m, msg.channel, msg.vendor_id, charge)
    return 0 if charge.status is ChargeStatus.PENDING else charge.micro


async def process(m: Messaging, msg: Inbound) -> None:
    """The worker's job for one message: never raises for what went wrong outside."""
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT_S):
            await answer(m, msg)
    except TimeoutError:
        log.warning("message %s timed out; it will be taken over", msg.vendor_id)
        await store.retry_later(m.pool, msg, RETRY_DELAY_S)


async def answer(m: Messaging, msg: Inbound) -> str:
    if msg.attempt > MAX_ATTEMPTS:
        return await _end(m, msg, "failed", error={"detail": "too many attempts"})
    tenant = str(msg.tenant_id)
    profile = await m.profiles.get(msg.tenant_id)
    charged = await charge_inbound(m, msg, profile)
    window_open = msg.channel != "whatsapp" or await m.windows.open(
        tenant, msg.customer, int(msg.vendor_time.timestamp() * 1000), m.clock_ms())
    if msg.body is None or not msg.body.strip():
        return await _end(m, msg, "unsupported")
    if not window_open:
        return await _end(m, msg, "expired")
    if await conversations.rating_reply(m, msg, profile):
        return await _end(m, msg, "rated")  # the answer to the rating question: no reply
    conversation = await conversations.customer_message(m, msg, profile, charged)
    session = CreditSession(m.credits, profile.card, channel_policy(msg.channel, profile.card),
                            tenant, msg.credit_session_id, m.clock_ms,
                            meta={"inbound": msg.vendor_id, "customer": msg.customer})
    grant = await session.start()
    if grant.replayed:
        # Each attempt has its own session id, so only a second run of this very attempt
        # finds it: that run is not ours to continue, and the lease decides what follows.
        log.warning("exchange %s not answered: its credit session is %s", msg.exchange_id,
                    grant.status)
        m.replays.labels(channel=msg.channel, stage="session").inc()
        return "superseded"
    # The reservation is the channel's "can run" check (metering.channels: the policy's
    # minimum grant, which a paused tenant is always below), made atomically.
    if not grant.ok:
        balance = await m.credits.balance(tenant)
        reason = _short_of_credit(m, msg, needed_to_run(msg.channel, profile.card),
                                  balance.available)
        await send_paused_notice(m, msg, profile, balance.topped_up)
        return await _end(m, msg, "paused", error=reason)
    try:
        return await _converse(m, msg, profile, session, conversation)
    except Exception:
        if session.open:
            await session.finish(details={"outcome": "error"})
        raise


async def _converse(m: Messaging, msg: Inbound, profile: TenantProfile,
                    session: CreditSession, conversation: uuid.UUID) -> str:
    tenant = str(msg.tenant_id)
    history = await m.history.load(tenant, msg.channel, msg.customer)
    turn = TextTurn(msg.tenant_id, msg.channel, msg.customer, msg.exchange_id,
                    msg.body or "", msg.profile_name)
    try:
        reply = await m.agent.reply(turn, profile.config, history, session.report)
    except AgentUnavailable as exc:
        await session.finish(details={"outcome": "llm_failed"})
        if msg.attempt < MAX_ATTEMPTS:
            await store.retry_later(m.pool, msg, RETRY_DELAY_S * msg.attempt)
            return "retry"
        return await _end(m, msg, "failed", error={"detail": str(exc)})
    text = _affordable(msg, session, reply.text)
    if not text:
        reason = None
        if reply.text:  # the agent answered; the held credit cannot pay one segment
            reason = _short_of_credit(m, msg, sms_segment_micro(session.card),
                                      session.remaining)
        settlement = await session.finish(details=exchange_record(reply, outcome="no_reply"))
        await conversations.credits_only(m, conversation, settlement.billed)
        await m.history.append(tenant, msg.channel, msg.customer, reply.messages[:1])
        return await _end(m, msg, "no_reply", error=reason)
    if not await store.move(m.pool, msg, "sending", session_id=session.session_id):
        await session.finish(details=exchange_record(reply, outcome="superseded"))
        return "superseded"
    sent = await deliver(m, msg.channel, msg.business, msg.customer, text)
    state = await _settle(m, msg, session, reply, text, sent)
    billed = session.settlement.billed if session.settlement is not None else 0
    if state != "replied":  # the tokens were billed; the customer got no reply
        await conversations.credits_only(m, conversation, billed)
        return state
    await conversations.agent_replied(m, conversation, msg, profile, reply, text, billed)
    if reply.action == "end":
        await conversations.ended_by_agent(m, conversation)
    return state


def exchange_record(reply: AgentReply, /, **details: Any) -> dict[str, Any]:
    """The exchange's record: how it ended, the outcomes its tools recorded, and the tool
    calls whose record could not be saved (the customer was told it did not go through)."""
    return {**details, "tool_outcomes": [o.event_id for o in reply.outcomes],
            "tool_failures": [f.to_json() for f in reply.tool_failures]}


def _short_of_credit(m: Messaging, msg: Inbound, needed: int, available: int
                     ) -> dict[str, Any]:
    """A reply not sent for lack of credit: logged, counted, and the reason returned for
    the message's record (never silent: the tenant must learn why a customer got none)."""
    log.warning("%s reply to %s not sent: %d micro-credits available, %d needed",
                msg.channel, msg.vendor_id, available, needed,
                extra={"tenant_id": str(msg.tenant_id), "event": "reply_not_sent"})
    m.unsent.labels(channel=msg.channel, reason="insufficient_credit").inc()
    return {"reason": "insufficient_credit", "needed_micro_credits": needed,
            "available_micro_credits": available}


def _affordable(msg: Inbound, session: CreditSession, text: str) -> str:
    """An SMS reply cut to the segments the held credit buys (at most MAX_REPLY_SEGMENTS)."""
    if msg.channel != "sms" or not text:
        return text
    segments = affordable_reply_segments(session.card, session.remaining)
    return truncate_to_segments(text, segments) if segments else ""


async def _settle(m: Messaging, msg: Inbound, session: CreditSession, reply: AgentReply,
                  text: str, sent: Sent) -> str:
    tenant = str(msg.tenant_id)
    if not sent.ok:
        state = "refused" if sent.window_closed else "unknown" if sent.unknown else "failed"
        await session.finish(details=exchange_record(reply, outcome=state,
                                                     vendor_code=sent.error_code))
        await store.move(m.pool, msg, state, from_states=("sending",),
                         error={"vendor_code": sent.error_code, "detail": sent.error})
        m.handled.labels(channel=msg.channel, outcome=state).inc()
        await m.history.append(tenant, msg.channel, msg.customer, reply.messages[:1])
        return state
    segments = count_segments(text) if msg.channel == "sms" else None
    await session.finish(details=exchange_record(reply, outcome="replied",
                                                 reply=sent.vendor_id),
                         usage=reply_usage(msg.channel, segments))
    assert sent.vendor_id is not None
    await store.record_reply(m.pool, msg, Outbound(
        msg.channel, sent.vendor_id, msg.tenant_id, msg.business, msg.customer, "reply", text,
        segments, reply_to=msg.vendor_id, session_id=session.session_id))
    m.handled.labels(channel=msg.channel, outcome="replied").inc()
    said = [*reply.messages[:-1], {"role": "assistant", "content": text}]
    await m.history.append(tenant, msg.channel, msg.customer, said)
    if reply.action == "end":
        await m.history.clear(tenant, msg.channel, msg.customer)
    return "replied"


async def send_paused_notice(m: Messaging, msg: Inbound, profile: TenantProfile,
                             episode: int) -> None:
    """The tenant's configured notice, once per customer per pause; never billed (a
    paused tenant pays for nothing but what it received), counted for the operators."""
    notice = profile.config.paused_notice
    if not notice or not await store.claim_paused_notice(m.pool, msg.tenant_id, msg.channel,
                                                         msg.customer, episode):
        return
    sent = await deliver(m, msg.channel, msg.business, msg.customer, notice)
    if not sent.ok or sent.vendor_id is None:
        log.warning("paused notice not sent: %s", sent.error)
        return
    await store.notice_sent(m.pool, msg.tenant_id, msg.channel, msg.customer, episode,
                            sent.vendor_id)
    segments = count_segments(notice) if msg.channel == "sms" else None
    await store.record_outbound(m.pool, Outbound(
        msg.channel, sent.vendor_id, msg.tenant_id, msg.business, msg.customer, "notice",
        notice, segments, reply_to=msg.vendor_id))
    charge = await record_free_notice(m.credits, tenant=str(msg.tenant_id),
                                      channel=msg.channel, vendor_id=sent.vendor_id,
                                      segments=segments, now_ms=m.clock_ms())
    await _keep_if_pending(m, msg.channel, sent.vendor_id, charge)


async def retry_pending_charges(m: Messaging, limit: int = 500) -> int:
    """Charges that waited for credit, tried again (idempotent on their event ids), at
    the time the message was received or sent."""
    done = 0
    for row in await store.pending_charges(m.pool, limit):
        tenant, channel, vendor_id = str(row["tenant_id"]), row["channel"], row["vendor_id"]
        if row["direction"] == "in":
            profile = await m.profiles.get(row["tenant_id"])
            charge = await charge_inbound_message(
                m.credits, card=profile.card, tenant=tenant, channel=channel,
                vendor_id=vendor_id, segments=row["segments"], now_ms=int(row["created_ms"]))
        else:
            charge = await record_free_notice(
                m.credits, tenant=tenant, channel=channel, vendor_id=vendor_id,
                segments=row["segments"], now_ms=int(row["created_ms"]))
        if charge.status is not ChargeStatus.PENDING:
            await store.set_charge_pending(m.pool, channel, vendor_id, False)
            done += 1
    return done

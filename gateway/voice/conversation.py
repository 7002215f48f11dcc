"""The conversation row of a phone call (metering.conversations): opened when the media
stream starts, settled with its transcript, summary and rating when the call ends.

`open_call` reads the tenant's settings (CSAT, masking) before the call's reservation and
writes the row once the reservation was granted; a failure there is logged and the call
goes on without a conversation (the credit session and call record are what bill).
`summarize_and_settle` runs after the pipeline ended: it asks the LLM for the summary
(bounded by `SUMMARY_TIMEOUT_S`; an abandoned call needs none), meters its tokens on
`summary_tokens` in the call's own session, settles that session with the summary in
its record (so the `session.completed` webhook carries it), then settles the
conversation with the billed credits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agents.chat_client import ChatClient
from agents.summary import Summary, summarize
from agents.voice.call import VoiceCall
from api.context import PG_POOL
from gateway.state import SETTINGS
from gateway.voice.state import VENDOR_HTTP
from metering.conversations import store
from metering.conversations.masking import mask_text
from metering.conversations.settings import TenantSettings, settings_of
from metering.meters import Meter

log = logging.getLogger("voicegw.stream")

SUMMARY_TIMEOUT_S = 10.0


@dataclass
class CallConversation:
    tenant_id: uuid.UUID
    call_sid: str
    settings: TenantSettings
    started_at: dt.datetime
    id: uuid.UUID | None = None  # None: the row could not be written


async def call_settings(app: web.Application, tenant_id: uuid.UUID) -> TenantSettings:
    return await settings_of(app[PG_POOL], tenant_id) or TenantSettings()


async def open_call(app: web.Application, conversation: CallConversation, *,
                    session_id: str, customer_hash: str, customer_masked: str) -> None:
    try:
        conversation.id = await store.start_call(
            app[PG_POOL], tenant_id=conversation.tenant_id, call_sid=conversation.call_sid,
            session_id=session_id, customer_hash=customer_hash,
            customer_masked=customer_masked, started_at=conversation.started_at)
    except Exception as exc:
        log.warning("the call's conversation row could not be written: %r", exc)


async def _summary(app: web.Application, call: VoiceCall) -> Summary | None:
    settings = app[SETTINGS]
    client = ChatClient(app[VENDOR_HTTP], settings.openai_base_url,
                        settings.openai_api_key or "not-set")
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_S):
            return await summarize(client, settings.llm_model, call.transcript.ordered(),
                                   call.transcript.tool_calls)
    except (TimeoutError, OSError) as exc:
        log.warning("no summary for the call: %r", exc)
        return None


def _at(conversation: CallConversation, call: VoiceCall, monotonic: float | None
        ) -> dt.datetime | None:
    if monotonic is None:
        return None
    return conversation.started_at + dt.timedelta(seconds=monotonic - call.usage.started)


async def summarize_and_settle(app: web.Application, conversation: CallConversation,
                               call: VoiceCall) -> None:
    """Settles the credit session (always) and then the conversation."""
    summary = None
    if conversation.id is not None:
        try:
            summary = await _summary(app, call)
        except Exception:
            log.exception("summary failed")
    usage = call.usage.snapshot()
    record: dict[str, Any] = call.record()
    text = None
    if summary is not None:
        usage[Meter.SUMMARY_TOKENS.value] = summary.tokens
        text = mask_text(summary.text) if conversation.settings.mask_transcripts \
            else summary.text
        record["summary"] = text
    if conversation.id is not None:
        record.update(conversation_id=str(conversation.id), resolved=call.resolved,
                      rating=call.rating)
    settlement = await call.credit.finish("settled", record, usage)
    if conversation.id is None:
        return
    ended = conversation.started_at + dt.timedelta(milliseconds=call.usage.call_ms())
    try:
        await store.settle_call(app[PG_POOL], conversation.call_sid, store.CallEnding(
            ended_at=ended, answered_at=_at(conversation, call, call.clock.first_audio_at),
            disposition=call.disposition or "completed", resolved=call.resolved,
            micro_credits=settlement.billed, transcript=call.transcript.ordered(),
            tool_calls=call.transcript.tool_calls,
            summary=text, rating=call.rating),
            mask=conversation.settings.mask_transcripts)
    except Exception as exc:
        log.warning("the call's conversation could not be settled: %r", exc)

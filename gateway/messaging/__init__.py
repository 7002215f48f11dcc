"""WhatsApp (Meta Cloud API) and SMS (Twilio Messaging): webhooks in, the text agent, replies
out through the vendors' REST APIs, metered per token, message and segment, exactly once
under retries. The design and its trade-offs are in docs/messaging.md.

`add_messaging(app)` mounts the routes and starts what runs beside them: the worker that
answers stored messages, the recovery loop that takes over messages whose process
died and retries charges that waited for credit, and the conversations job (idle text
conversations closed and summarized, transcripts past their retention deleted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from agents.chat_client import ChatClient
from agents.history import ConversationHistory
from agents.text_agent import TextAgent
from agents.tokens import count_tokens
from api.context import CREDIT_STORE, PG_POOL, REDIS
from gateway.background import background_task
from gateway.messaging import exchange, routes, store
from gateway.messaging.conversations import run_conversation_jobs
from gateway.messaging.deps import MESSAGING, Messaging, TenantProfiles
from gateway.messaging.intake import schedule
from gateway.messaging.vendors import GraphApi, TwilioMessages
from gateway.messaging.window import CustomerWindows
from gateway.messaging.worker import MessageWorker
from gateway.state import METRICS, SETTINGS

log = logging.getLogger("voicegw.messaging")

RECOVER_EVERY_S = 5.0
CHARGES_EVERY_S = 60.0
CONCURRENCY = 64
MAX_BACKLOG = 10_000


async def _messaging_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # tiktoken may try to download its encoding on first use: do that off the loop, once.
    await asyncio.to_thread(count_tokens, "warm up")
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2))
    llm = ChatClient(http, settings.openai_base_url, settings.openai_api_key or "not-set")
    public = settings.public_url.rstrip("/")
    metrics = app[METRICS]
    app[MESSAGING] = Messaging(
        settings=settings, pool=app[PG_POOL], redis=app[REDIS], credits=app[CREDIT_STORE],
        windows=CustomerWindows(app[REDIS], settings.redis_prefix),
        history=ConversationHistory(app[REDIS], settings.redis_prefix),
        agent=TextAgent(llm, settings.llm_model, app[PG_POOL],
                        on_tool_failure=lambda f: metrics.tool_failures.labels(
                            channel=f.channel, tool=f.tool).inc()),
        graph=GraphApi(http, settings.graph_api_base, settings.whatsapp_access_token),
        twilio=TwilioMessages(http, settings.twilio_api_base, settings.twilio_account_sid,
                              settings.twilio_auth_token,
                              f"{public}/twilio/sms/status" if public else None),
        profiles=TenantProfiles(app[PG_POOL]),
        worker=MessageWorker(CONCURRENCY, MAX_BACKLOG,
                             on_outcome=lambda outcome: metrics.message_jobs.labels(
                                 outcome=outcome).inc()),
        handled=metrics.messages, replays=metrics.replays, unsent=metrics.unsent)
    yield
    await http.close()


async def recover(m: Messaging) -> int:
    """One recovery pass: messages whose worker died, taken over; sends that never
    reported back, marked unknown. Returns how many messages were taken over."""
    room = m.worker.max_backlog - len(m.worker)
    taken = await store.take_over_stale(m.pool, min(room, 200)) if room > 0 else []
    schedule(m, taken)
    lost = await store.give_up_sending(m.pool)
    if lost:
        log.warning("%d replies may or may not have been sent (crash while sending)", lost)
    return len(taken)


async def run_recovery(app: web.Application) -> None:
    m = app[MESSAGING]
    charges_due = 0.0
    while True:
        await asyncio.sleep(RECOVER_EVERY_S)
        try:
            if m.worker.accepting:
                await recover(m)
            if time.monotonic() >= charges_due:
                await exchange.retry_pending_charges(m)
                charges_due = time.monotonic() + CHARGES_EVERY_S
        except Exception as exc:
            log.warning("messaging recovery pass failed: %s", exc)


async def _drain(app: web.Application) -> None:
    m = app[MESSAGING]

    async def hand_back(keys: list[str]) -> None:
        pairs = [key.split(":", 1) for key in keys]
        await m.pool.execute(
            """UPDATE messages SET lease_until = now() FROM unnest($1::text[], $2::text[])
                   AS k(channel, vendor_id)
               WHERE messages.channel = k.channel AND messages.vendor_id = k.vendor_id
                 AND state = 'received'""",
            [p[0] for p in pairs], [p[1] for p in pairs])

    cancelled = await m.worker.drain(app[SETTINGS].shutdown_grace_s, hand_back)
    if cancelled:
        log.warning("shutdown: handed %d unanswered messages back", cancelled)


def add_messaging(app: web.Application) -> None:
    app.cleanup_ctx.append(_messaging_ctx)
    app.cleanup_ctx.append(background_task("messaging-recovery", run_recovery))
    app.cleanup_ctx.append(background_task("conversations", run_conversation_jobs))
    app.on_shutdown.append(_drain)
    routes.add_routes(app)

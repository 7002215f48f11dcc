"""What the messaging channels work with, built once per app.

Prices and credit policies of WhatsApp and SMS live in `metering` (docs/messaging.md):
`metering.messages` has one function per billing operation (the inbound charge, the free
paused notice, the paid send, what a reply may cost), `metering.channels` the credit
policy of each channel and the one rule of "paused". The answer to an inbound message is
a credit session (Gy) per message: reserved before the LLM runs, settled after the reply,
with the tokens, the tool calls and the reply itself. A reply the vendor refused is not
in the settled usage; the tokens spent writing it are.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import Counter

from agents.history import ConversationHistory
from agents.text_agent import TextAgent
from gateway.config import Settings
from gateway.messaging.vendors import GraphApi, TwilioMessages
from gateway.messaging.window import CustomerWindows
from gateway.messaging.worker import MessageWorker
from metering.agent_configs import AgentConfig, agent_config_for
from metering.cards import card_for_tenant
from metering.conversations.settings import TenantSettings, settings_of
from metering.credit_store import CreditStore
from metering.ratecard import RateCard

PROFILE_TTL_S = 30.0  # a changed rate card or agent config applies within this


@dataclass(frozen=True)
class TenantProfile:
    card: RateCard
    config: AgentConfig
    settings: TenantSettings = field(default_factory=TenantSettings)  # conversations, CSAT


class TenantProfiles:
    """Each tenant's rate card, agent config and settings, cached briefly: a burst of messages for
    one tenant costs two queries, not two per message."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = PROFILE_TTL_S) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[uuid.UUID, tuple[float, TenantProfile]] = {}

    async def get(self, tenant: uuid.UUID) -> TenantProfile:
        now = time.monotonic()
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] > now:
            return cached[1]
        profile = TenantProfile(await card_for_tenant(self.pool, tenant),
                                await agent_config_for(self.pool, tenant),
                                await settings_of(self.pool, tenant) or TenantSettings())
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant] = (now + self.ttl_s, profile)
        return profile


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Messaging:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    credits: CreditStore
    windows: CustomerWindows
    history: ConversationHistory
    agent: TextAgent
    graph: GraphApi
    twilio: TwilioMessages
    profiles: TenantProfiles
    worker: MessageWorker
    handled: Counter  # voicegw_messages_total{channel, outcome}
    replays: Counter  # voicegw_replays_total{channel, stage}
    unsent: Counter  # voicegw_message_replies_unsent_total{channel, reason}
    clock_ms: Callable[[], int] = field(default=wall_clock_ms)


MESSAGING = web.AppKey("messaging", Messaging)

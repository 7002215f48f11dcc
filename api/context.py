"""Typed application state the API handlers read.

The gateway's app factory fills these keys; the API never imports the gateway, so the
keys live here, on the side that reads them.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
REDIS_PREFIX = web.AppKey("redis_prefix", str)
ADMIN_TOKEN = web.AppKey("admin_token", str)
INVOICE_ISSUER = web.AppKey("invoice_issuer", str)  # VOICEGW_INVOICE_ISSUER
WEBHOOKS_ALLOW_PRIVATE = web.AppKey("webhooks_allow_private", bool)


class Clock(Protocol):
    """The time billing handlers act at (UTC); scenario tests put a clock they move."""

    def __call__(self) -> dt.datetime: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


CLOCK = web.AppKey("clock", Clock)

from metering.credit_store import CreditStore  # noqa: E402 - keep the keys above together
from metering.kpis.commentary import CommentaryWriter  # noqa: E402
from metering.notify.mail import Mailer  # noqa: E402

CREDIT_STORE = web.AppKey("credit_store", CreditStore)
# The LLM that writes the KPI commentary (the gateway's OpenAI-compatible client); absent:
# the commentary answers its fallback text.
COMMENTARY_WRITER = web.AppKey("commentary_writer", CommentaryWriter)
MAILER = web.AppKey[Mailer | None]("mailer")  # None: no VOICEGW_SMTP_URL

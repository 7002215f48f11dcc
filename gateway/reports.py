"""The KPI commentary's writer and the weekly report job, wired into the app.

The commentary's words come from the same OpenAI-compatible provider as the text agent
(`VOICEGW_OPENAI_BASE_URL`, `VOICEGW_LLM_MODEL`; the emulator in tests and development),
through `agents.chat_client.ChatClient`, handed to the API as the typed callable in
`api.context.COMMENTARY_WRITER`. Every gateway runs the weekly report pass; the
`weekly_reports` primary key sends each tenant's report once per week whichever gateway
gets there first (metering.kpis.weekly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from agents.chat_client import ChatClient
from api.context import CLOCK, COMMENTARY_WRITER, PG_POOL
from gateway.background import background_task
from gateway.state import SCHEMA_READY, SETTINGS
from metering.kpis.commentary import CommentaryWriter
from metering.kpis.weekly import queue_weekly_reports

log = logging.getLogger("voicegw.reports")

WEEKLY_EVERY_S = 300.0  # a pass with nothing due is one query
COMMENTARY_MAX_TOKENS = 300


def chat_writer(client: ChatClient, model: str) -> CommentaryWriter:
    async def write(system: str, prompt: str) -> str:
        completion = await client.complete({
            "model": model, "max_tokens": COMMENTARY_MAX_TOKENS,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": prompt}]})
        content = completion.message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the completion has no text")
        return content

    return write


async def _writer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    http = aiohttp.ClientSession()
    client = ChatClient(http, settings.openai_base_url, settings.openai_api_key or "not-set")
    app[COMMENTARY_WRITER] = chat_writer(client, settings.llm_model)
    yield
    await http.close()


async def run_weekly_reports(app: web.Application) -> None:
    await app[SCHEMA_READY].wait()
    while True:
        try:
            queued = await queue_weekly_reports(app[PG_POOL], app[COMMENTARY_WRITER],
                                                app[CLOCK]())
            if queued:
                log.info("queued %d weekly reports", len(queued))
        except Exception as exc:  # PostgreSQL away: the next pass catches up
            log.warning("weekly report pass failed: %r", exc)
        await asyncio.sleep(WEEKLY_EVERY_S)


def wire_reports(app: web.Application) -> None:
    app.cleanup_ctx.append(_writer_ctx)
    app.cleanup_ctx.append(background_task("weekly-reports", run_weekly_reports))

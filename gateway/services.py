"""Start-up work that must not stop the gateway from coming up when a dependency is down."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.state import SCHEMA_READY, SETTINGS
from metering.migrate import migrate_url

log = logging.getLogger("voicegw.services")

MIGRATE_RETRY_S = 5.0


async def migrate_until_done(app: web.Application) -> None:
    """Applies pending migrations now, or keeps retrying while PostgreSQL is down."""
    while True:
        try:
            applied = await migrate_url(app[SETTINGS].database_url)
        except (TimeoutError, OSError) as exc:
            log.warning("database not reachable for migrations (%s); retrying", exc)
            await asyncio.sleep(MIGRATE_RETRY_S)
            continue
        if applied:
            log.info("applied migrations %s", applied)
        app[SCHEMA_READY].set()
        return

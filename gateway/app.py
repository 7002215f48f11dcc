"""The aiohttp application factory: typed state, middlewares, routes, background tasks.

Connections and background tasks are opened in `cleanup_ctx` so they are closed (tasks
cancelled and awaited) in reverse order on shutdown. The PostgreSQL pool starts empty
(`min_size=0`): the gateway comes up, and says so on `/readyz`, even while PostgreSQL
is still down.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from api.auth import auth_middleware
from api.context import (
    ADMIN_TOKEN,
    CLOCK,
    INVOICE_ISSUER,
    MAILER,
    PG_POOL,
    PUBLIC_URL,
    REDIS,
    REDIS_PREFIX,
    SECURE_COOKIES,
    WEBHOOKS_ALLOW_PRIVATE,
    utcnow,
)
from api.keycache import add_key_cache
from api.live_hub import LIVE_HUB, LiveHub, live_ctx
from api.middleware import problem_middleware
from api.routes import add_api_routes
from gateway import health
from gateway.background import background_task
from gateway.config import Settings
from gateway.logs import request_id_var
from gateway.messaging import add_messaging
from gateway.metrics import Metrics
from gateway.reports import wire_reports
from gateway.services import migrate_until_done
from gateway.sessions import SessionRegistry
from gateway.state import METRICS, SCHEMA_READY, SESSIONS, SETTINGS
from gateway.stores import PooledConnection, redis_client
from gateway.voice.routes import add_voice_routes
from gateway.wiring import wire_metering
from metering.notify.mail import Mailer, SmtpServer

log = logging.getLogger("voicegw.app")


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, request count and duration by route template (not raw path: bounded
    cardinality)."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS]
        metrics.http_requests.labels(route=route, status=str(status)).inc()
        if status != 101:  # a websocket's time is its call's length, not handling time
            metrics.http_duration.labels(route=route).observe(elapsed)
        log.debug("request", extra={"route": route, "status": status,
                                    "duration_ms": round(elapsed * 1000, 2)})
        request_id_var.reset(token)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[SETTINGS].redis_url)
    app[REDIS] = client
    yield
    await client.aclose()


async def _postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = asyncpg.create_pool(
        app[SETTINGS].database_url, min_size=0, max_size=10, timeout=5, command_timeout=30,
        connection_class=PooledConnection,  # no reset round trip when nothing needs one
    )
    await pool  # with min_size=0 this opens no connection yet
    app[PG_POOL] = pool
    yield
    await pool.close()


async def _end_live_streams(app: web.Application) -> None:
    app[LIVE_HUB].close_all()  # before the server waits for its handlers to return


async def _drain_sessions(app: web.Application) -> None:
    closed = await app[SESSIONS].drain(app[SETTINGS].shutdown_grace_s)
    if closed:
        log.warning("shutdown deadline passed; settled %d live sessions", closed)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[observe_middleware, problem_middleware, auth_middleware],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[SESSIONS] = SessionRegistry()
    app[ADMIN_TOKEN] = settings.admin_token
    app[REDIS_PREFIX] = settings.redis_prefix
    app[INVOICE_ISSUER] = settings.invoice_issuer
    app[WEBHOOKS_ALLOW_PRIVATE] = settings.webhooks_allow_private
    app[PUBLIC_URL] = settings.public_url
    app[SECURE_COOKIES] = settings.secure_cookies
    app[CLOCK] = utcnow  # the billing cycle and the billing API read the same clock
    app[MAILER] = Mailer(SmtpServer.from_url(settings.smtp_url), settings.mail_from) \
        if settings.smtp_url else None
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_postgres_ctx)
    add_key_cache(app)  # after the Redis client: it subscribes to key changes
    app[SCHEMA_READY] = asyncio.Event()
    if settings.migrate_on_start:
        app.cleanup_ctx.append(background_task("migrations", migrate_until_done))
    else:
        app[SCHEMA_READY].set()  # migrated by `voicegw migrate` or another process
    live_streams = app[METRICS].live_streams
    app[LIVE_HUB] = LiveHub(app, on_count=live_streams.set)
    app.cleanup_ctx.append(live_ctx)
    app.on_shutdown.append(_end_live_streams)
    app.on_shutdown.append(_drain_sessions)
    wire_metering(app)
    wire_reports(app)
    health.add_routes(app)
    add_api_routes(app)
    add_messaging(app)
    add_voice_routes(app)
    return app

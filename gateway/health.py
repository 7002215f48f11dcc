"""Liveness, readiness and metrics endpoints.

`/readyz` asks Redis and PostgreSQL every time (with a short timeout) instead of caching
a flag: a load balancer must see a lost dependency at once, and see it come back without
anyone restarting the gateway.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from api.context import PG_POOL, REDIS
from api.models import Health, Readiness
from api.operations import Reply, add, operation, respond
from gateway.metrics import CONTENT_TYPE
from gateway.state import METRICS, SCHEMA_READY, SESSIONS

CHECK_TIMEOUT_S = 1.0


@operation("GET", "/healthz", "Liveness: the process answers", "health",
           responses={200: Reply("alive", Health)})
async def healthz(request: web.Request) -> web.Response:
    return respond(Health(status="ok"))


async def _check_redis(app: web.Application) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await app[REDIS].ping()
    except Exception as exc:
        app[METRICS].redis_errors.labels(op="readyz").inc()
        return f"{type(exc).__name__}: {exc}"[:200] or "unreachable"
    return None


async def _check_postgres(app: web.Application) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await app[PG_POOL].fetchval("SELECT 1")
    except Exception as exc:
        app[METRICS].postgres_errors.labels(op="readyz").inc()
        return f"{type(exc).__name__}: {exc}"[:200] or "unreachable"
    return None


@operation("GET", "/readyz", "Readiness: Redis and PostgreSQL answer, migrations done, "
           "not draining", "health",
           responses={200: Reply("ready", Readiness),
                      503: Reply("not ready: `failed` names what, `errors` says why",
                                 Readiness)})
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    redis_problem, postgres_problem = await asyncio.gather(
        _check_redis(app), _check_postgres(app)
    )
    checks = {
        "redis": "ok" if redis_problem is None else "failed",
        "postgres": "ok" if postgres_problem is None else "failed",
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    body: dict[str, Any] = {"status": "ready" if not failed else "unavailable", "checks": checks}
    if not app[SCHEMA_READY].is_set():  # migrations still running: tables may be missing
        body["status"] = "migrating"
        failed.append("migrations")
    if app[SESSIONS].draining:
        body["status"] = "draining"
        failed.append("draining")
    if failed:
        body["failed"] = failed
        errors = {"redis": redis_problem, "postgres": postgres_problem}
        body["errors"] = {k: v for k, v in errors.items() if v}
        return respond(Readiness(**body), 503, exclude_unset=True)
    return respond(Readiness(**body), exclude_unset=True)


@operation("GET", "/metrics", "Prometheus metrics (text exposition format)", "health",
           responses={200: Reply("the metrics", media="text/plain",
                                 schema={"type": "string"})})
async def metrics(request: web.Request) -> web.Response:
    exported = request.app[METRICS]
    exported.active_calls.set(request.app[SESSIONS].count("phone"))
    return web.Response(
        body=exported.render(),
        headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"},
    )


def add_routes(app: web.Application) -> None:
    add(app, healthz, readyz, metrics)

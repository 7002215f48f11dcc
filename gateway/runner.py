"""Running the app: sockets, uvloop, signals, graceful shutdown.

Several worker processes may share one port (`SO_REUSEPORT`); each is a full gateway
with its own event loop, and none assumes it is alone (state lives in Redis/PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.app import create_app
from gateway.config import Settings
from gateway.sockets import ConnectionGuard, GuardedSite, SocketLimits
from gateway.state import METRICS

log = logging.getLogger("voicegw.runner")

StartHook = Callable[[web.Application, int], Awaitable[None]]


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve_until_stopped(
    settings: Settings,
    *,
    on_started: StartHook | None = None,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
    configure: Callable[[web.Application], None] | None = None,
) -> None:
    """Serves until SIGINT/SIGTERM (or `stop` is set), then shuts down gracefully:
    stop accepting, let live sessions finish up to the grace deadline, settle the rest."""
    app = create_app(settings)
    guard = ConnectionGuard(SocketLimits.from_settings(settings), app[METRICS])
    app.middlewares.insert(0, guard.middleware())  # outermost: it times whole requests
    if configure is not None:  # `voicegw dev`'s own routes, before the app is frozen
        configure(app)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.shutdown_grace_s, access_log=None,
        keepalive_timeout=settings.idle_timeout_s,
    )
    await runner.setup()
    site = GuardedSite(runner, guard, settings.host, settings.port, reuse_port=reuse_port)
    await site.start()
    port = _bound_port(runner) or settings.port
    log.info("gateway listening on %s:%d", settings.host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if on_started is not None:
            await on_started(app, port)
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None

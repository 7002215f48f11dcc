"""The tenant dashboard page: static HTML that reads the tenant API with the tenant's key."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from api.operations import Reply, add, operation

_PAGE = resources.files("api") / "static" / "dashboard.html"


@operation("GET", "/dashboard", "The tenant dashboard page (reads the API with a key)",
           "docs", responses={200: Reply("an HTML page", media="text/html",
                                         schema={"type": "string"})})
async def dashboard_handler(request: web.Request) -> web.Response:
    return web.Response(
        text=_PAGE.read_text(encoding="utf-8"),
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                 "style-src 'unsafe-inline'", "Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    add(app, dashboard_handler)

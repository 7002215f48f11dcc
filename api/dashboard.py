"""The tenant dashboard page: static HTML and script that read the tenant API as the
signed-in person (through `/auth.js`: the session cookie and CSRF header) or with a key
pasted into the tab, show what the role allows, follow `GET /v1/live`, and draw charts
with the vendored Chart.js (`static/vendor`, served from here: the page needs nothing from
another origin)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from api.operations import Reply, add, operation

_STATIC = resources.files("api") / "static"
_ASSETS = {"dashboard.js": ("dashboard.js", "text/javascript"),
           "chart.umd.min.js": ("vendor/chart.umd.min.js", "text/javascript")}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'")


@operation("GET", "/dashboard", "The tenant dashboard page (a signed-in user or an API key)",
           "docs", responses={200: Reply("an HTML page", media="text/html",
                                         schema={"type": "string"})})
async def dashboard_handler(request: web.Request) -> web.Response:
    return web.Response(
        text=(_STATIC / "dashboard.html").read_text(encoding="utf-8"),
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
    )


@operation("GET", "/dashboard/{asset}", "A script of the dashboard page", "docs",
           responses={200: Reply("the file", media="text/javascript",
                                 schema={"type": "string"})},
           path_params={"asset": {"enum": sorted(_ASSETS)}}, hidden=True)
async def dashboard_asset(request: web.Request) -> web.Response:
    found = _ASSETS.get(request.match_info["asset"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    path, media = found
    return web.Response(body=(_STATIC / path).read_bytes(), content_type=media,
                        headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    add(app, dashboard_handler, dashboard_asset)

"""The sign-in page (`/login`, also for operators: `/login?next=/admin/dashboard`), the
users and API-keys pages for owners and admins, and `auth.js`, the small script every
dashboard includes to call the API with the session (cookie and CSRF header) or, when
the tab holds one, an API key."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from api.operations import Handler, Reply, add, operation

_STATIC = resources.files("api") / "static"
HTML = Reply("an HTML page", media="text/html", schema={"type": "string"})
# Scripts from this origin only (the pages' own inline script and auth.js); no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Cache-Control": "no-store", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _page(path: str, filename: str, summary: str) -> Handler:
    @operation("GET", path, summary, "docs", responses={200: HTML})
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=(_STATIC / filename).read_text(encoding="utf-8"),
                            content_type="text/html", headers=PAGE_HEADERS)
    return handler


@operation("GET", "/auth.js", "The dashboards' API helper (session or API key)", "docs",
           responses={200: Reply("JavaScript", media="text/javascript",
                                 schema={"type": "string"})})
async def auth_script(request: web.Request) -> web.Response:
    return web.Response(text=(_STATIC / "auth.js").read_text(encoding="utf-8"),
                        content_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    add(app,
        _page("/login", "login.html", "Sign in; set a password from an invite or reset link"),
        _page("/users", "users.html", "The users page (owners and admins)"),
        _page("/api-keys", "api-keys.html", "The API keys page (owners and admins)"),
        auth_script)

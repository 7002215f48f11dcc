"""`voicegw dev`'s mail catcher: an aiosmtpd SMTP server on the gateway's own event loop
that keeps every mail it receives, and the page that shows them (`/dev/mail`, JSON with
`?format=json`). Only `voicegw dev` adds it; tests use it as their real SMTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from api.operations import Reply, add, operation

MAX_KEPT = 500  # the newest mails; a long dev session does not grow without bound


@dataclass(frozen=True)
class CaughtMail:
    received_at: dt.datetime
    mail_from: str
    recipients: list[str]
    subject: str
    body: str

    def as_json(self) -> dict[str, Any]:
        return {"received_at": self.received_at.isoformat(), "from": self.mail_from,
                "to": self.recipients, "subject": self.subject, "body": self.body}


@dataclass
class MailCatcher:
    mails: list[CaughtMail] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.AbstractServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="voicegw-dev"),
                                                host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        body = parsed.get_body(("plain",)) if isinstance(parsed, EmailMessage) else None
        self.mails.append(CaughtMail(
            dt.datetime.now(dt.UTC), str(envelope.mail_from), list(envelope.rcpt_tos),
            str(parsed.get("Subject", "")),
            body.get_content().replace("\r\n", "\n") if body is not None else ""))
        del self.mails[:-MAX_KEPT]
        async with self.arrived:
            self.arrived.notify_all()
        return "250 OK"

    async def wait_for(self, count: int) -> list[CaughtMail]:
        """Waits until at least `count` mails arrived (tests put a timeout around it)."""
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.mails) >= count)
        return list(self.mails)


MAIL_CATCHER = web.AppKey("mail_catcher", MailCatcher)


@operation("GET", "/dev/mail", "Mail caught by `voicegw dev` (HTML, or JSON with "
           "?format=json)", "dev", hidden=True,
           responses={200: Reply("the caught mail", media="text/html",
                                 schema={"type": "string"})})
async def _mail_page(request: web.Request) -> web.Response:
    mails = list(reversed(request.app[MAIL_CATCHER].mails))
    if request.query.get("format") == "json" or "application/json" in request.headers.get(
            "Accept", ""):
        return web.json_response({"mails": [m.as_json() for m in mails]})
    rows = "".join(
        f"<article><h2>{html.escape(m.subject)}</h2><p>{html.escape(m.received_at.isoformat())}"
        f" · from {html.escape(m.mail_from)} to {html.escape(', '.join(m.recipients))}</p>"
        f"<pre>{html.escape(m.body)}</pre></article>" for m in mails)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>voicegw dev mail</title>"
            "</head><body><h1>Caught mail</h1>"
            f"{rows or '<p>No mail yet.</p>'}<p><a href='?format=json'>JSON</a></p></body></html>")
    return web.Response(text=page, content_type="text/html")


def add_mail_routes(app: web.Application, catcher: MailCatcher) -> None:
    app[MAIL_CATCHER] = catcher
    add(app, _mail_page)  # described but not published: dev mode only

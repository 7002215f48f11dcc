"""E-mail: a mail outbox in PostgreSQL, and a worker that sends it over SMTP after commit.

A mail is queued in the transaction of its cause (`enqueue_mail`, one row per recipient,
unique on its dedupe key: queued twice, sent once) and sent later by `MailWorker`, in
every gateway process: rows are claimed with FOR UPDATE SKIP LOCKED and a lease, sent
with aiosmtplib, and retried on MAIL_RETRY_S until they are given up. No request ever
waits for an SMTP server. Without VOICEGW_SMTP_URL mails stay queued.

VOICEGW_SMTP_URL: `smtp://[user:password@]host[:port]` (STARTTLS when the server offers
it) or `smtps://...` (TLS from the first byte).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg

log = logging.getLogger("voicegw.mail")

MAIL_RETRY_S = (30, 120, 600, 3600, 6 * 3600)  # then given up (status failed)
MAIL_LEASE_S = 60.0
SMTP_TIMEOUT_S = 10.0
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "application/pdf"
    data: bytes


async def enqueue_mail(conn: asyncpg.Connection, tenant_id: uuid.UUID | None,
                       recipients: Sequence[str], subject: str, body: str,
                       dedupe_key: str, *, html: str | None = None,
                       attachment: Attachment | None = None) -> int:
    """Queues one mail per recipient inside the caller's transaction; how many were new.
    `body` is the plain-text part; `html` an alternative HTML part; `attachment` one file."""
    if not recipients:
        return 0
    status = await conn.execute(
        """INSERT INTO mail_outbox (tenant_id, dedupe_key, recipient, subject, body, html,
                                    attachment, attachment_name, attachment_type)
           SELECT $1, $2 || ':' || r, r, $3, $4, $6, $7, $8, $9 FROM unnest($5::text[]) AS r
           ON CONFLICT (dedupe_key) DO NOTHING""",
        tenant_id, dedupe_key, subject, body, list(recipients), html,
        attachment.data if attachment else None, attachment.filename if attachment else None,
        attachment.content_type if attachment else None)
    return int(status.rsplit(" ", 1)[-1])


async def tenant_emails(conn: asyncpg.Connection | asyncpg.Pool,
                        tenant_id: uuid.UUID) -> list[str]:
    emails = await conn.fetchval("SELECT emails FROM alert_settings WHERE tenant_id = $1",
                                 tenant_id)
    return list(emails or [])


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    use_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://host[:port] or smtps://host[:port]")
        tls = parts.scheme == "smtps"
        return cls(parts.hostname, parts.port or (465 if tls else 25), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


class Mailer:
    """Sends one mail over SMTP; raises aiosmtplib.SMTPException or OSError on failure."""

    def __init__(self, server: SmtpServer, mail_from: str) -> None:
        self.server = server
        self.mail_from = mail_from

    async def send(self, recipient: str, subject: str, body: str, *, html: str | None = None,
                   attachment: Attachment | None = None) -> None:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
        if attachment is not None:
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(attachment.data, maintype=maintype,
                                   subtype=subtype or "octet-stream",
                                   filename=attachment.filename)
        s = self.server
        await aiosmtplib.send(message, hostname=s.hostname, port=s.port, use_tls=s.use_tls,
                              username=s.username, password=s.password,
                              timeout=SMTP_TIMEOUT_S)


@dataclass
class MailWorker:
    pool: asyncpg.Pool
    mailer: Mailer
    clock: Clock = utcnow
    retry_s: Sequence[float] = MAIL_RETRY_S
    batch: int = 50
    poll_s: float = 1.0

    async def run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except Exception as exc:  # the worker outlives any store failure (see
                # metering.notify.delivery): it is the only thing that sends mail
                log.warning("mail pass failed: %r", exc)
                sent = 0
            if sent == 0:
                await asyncio.sleep(self.poll_s)

    async def send_due(self) -> int:
        """Claims due mails, sends them, records each result; how many were tried."""
        now = self.clock()
        rows = await self.pool.fetch(
            """UPDATE mail_outbox SET lease_until = $2 WHERE id IN (
                   SELECT id FROM mail_outbox WHERE status = 'pending'
                   AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
               RETURNING id, recipient, subject, body, html, attachment, attachment_name,
                         attachment_type, attempts""",
            now, now + dt.timedelta(seconds=MAIL_LEASE_S), self.batch)
        await asyncio.gather(*(self._send_one(row) for row in rows))
        return len(rows)

    async def _send_one(self, row: asyncpg.Record) -> None:
        try:
            attachment = None if row["attachment"] is None else Attachment(
                row["attachment_name"], row["attachment_type"] or "application/octet-stream",
                row["attachment"])
            await self.mailer.send(row["recipient"], row["subject"], row["body"],
                                   html=row["html"], attachment=attachment)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            attempts = row["attempts"] + 1
            given_up = attempts > len(self.retry_s)
            delay = 0.0 if given_up else self.retry_s[attempts - 1]
            await self.pool.execute(
                """UPDATE mail_outbox SET attempts = $2, status = $3, last_error = $4,
                   next_attempt_at = $5, lease_until = NULL WHERE id = $1""",
                row["id"], attempts, "failed" if given_up else "pending", str(exc)[:500],
                self.clock() + dt.timedelta(seconds=delay))
            log.warning("mail to %s not sent (attempt %d): %s", row["recipient"], attempts, exc)
            return
        await self.pool.execute(
            """UPDATE mail_outbox SET attempts = attempts + 1, status = 'sent', sent_at = $2,
               lease_until = NULL, last_error = NULL WHERE id = $1""", row["id"], self.clock())

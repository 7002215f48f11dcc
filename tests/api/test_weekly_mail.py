"""The Monday mail: queued once per tenant and week across gateways (two passes racing on two
pools), when the week is over in the tenant's time zone, then sent over real SMTP
(aiosmtpd) by the mail worker as an HTML mail with the PDF attached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import aiohttp
import asyncpg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from agents.chat_client import ChatClient
from gateway.reports import chat_writer
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.server import EmulatorConfig, start_emulators
from metering.kpis.commentary import CommentaryWriter
from metering.kpis.weekly import queue_weekly_reports
from metering.notify.mail import Mailer, MailWorker, SmtpServer
from metering.tenants import create_tenant
from tests.api.kpi_fixtures import play, utc
from tests.api.test_kpis_month import MONTH


class RawCatcher:
    """An SMTP server keeping each mail whole (parts and attachments)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="test"),
                                                "127.0.0.1", 0)
        return f"smtp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
async def catcher() -> AsyncIterator[tuple[RawCatcher, str]]:
    found = RawCatcher()
    url = await found.start()
    yield found, url
    await found.stop()


@pytest.fixture
async def writer() -> AsyncIterator[CommentaryWriter]:
    running = await start_emulators(config=EmulatorConfig(ChatState(ChatTiming(0, 0))))
    async with aiohttp.ClientSession() as http:
        yield chat_writer(ChatClient(http, running.base_urls()["openai"], "k"), "gpt-test")
    await running.stop()


async def test_the_monday_report_goes_once_per_week_in_the_tenants_time_zone(
        pg_pool: asyncpg.Pool, database_url: str, catcher: tuple[RawCatcher, str],
        writer: CommentaryWriter) -> None:
    tenant = await create_tenant(pg_pool, "Acme Dental")
    silent = await create_tenant(pg_pool, "No readers")  # no report_emails: nothing sent
    await pg_pool.execute(
        """UPDATE tenants SET timezone = 'Europe/Istanbul', created_at = '2026-10-01',
           report_emails = '{boss@acme.example,ops@acme.example}' WHERE id = $1""", tenant.id)
    await pg_pool.execute("UPDATE tenants SET created_at = '2026-10-01' WHERE id = $1",
                          silent.id)
    await play(pg_pool, str(tenant.id), MONTH)
    # Sunday 23:30 in Istanbul (Monday in neither place yet for W47): last full week is W46.
    sunday = await queue_weekly_reports(pg_pool, writer, utc("2026-11-22 20:30"))
    assert sunday == [(tenant.id, "2026-W46")]
    # 22:30 UTC Sunday is 01:30 Monday in Istanbul: W47 is over there. Two gateways race.
    other = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert other is not None
    try:
        monday = utc("2026-11-22 22:30")
        first, second = await asyncio.gather(queue_weekly_reports(pg_pool, writer, monday),
                                             queue_weekly_reports(other, writer, monday))
    finally:
        await other.close()
    assert sorted(first + second) == [(tenant.id, "2026-W47")]
    assert await queue_weekly_reports(pg_pool, writer, utc("2026-11-24 10:00")) == []
    rows = await pg_pool.fetch("SELECT week, recipients FROM weekly_reports ORDER BY week")
    assert [r["week"] for r in rows] == ["2026-W46", "2026-W47"]
    assert await pg_pool.fetchval("SELECT count(*) FROM mail_outbox") == 4  # 2 weeks x 2

    _, smtp_url = catcher
    worker = MailWorker(pg_pool, Mailer(SmtpServer.from_url(smtp_url), "vgw <r@gw.example>"))
    assert await worker.send_due() == 4
    mails = catcher[0].mails
    assert sorted(to[0] for to, _ in mails) == ["boss@acme.example", "boss@acme.example",
                                                "ops@acme.example", "ops@acme.example"]
    w46 = next(m for _, m in mails if "2026-W46" in str(m["Subject"]))
    assert str(w46["Subject"]) == \
        "Weekly report 2026-W46 (2026-11-09 to 2026-11-15): Acme Dental"
    plain = w46.get_body(("plain",))
    html = w46.get_body(("html",))
    assert plain is not None and html is not None
    assert "Conversations: 3" in plain.get_content()
    html_text = html.get_content()
    assert "<b>3</b>" in html_text and "+90******E" in html_text  # P4 in the top list
    assert "This is the voicegw emulator" in html_text  # the commentary's words
    attachments = list(w46.iter_attachments())
    assert len(attachments) == 1
    pdf = attachments[0]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "weekly-report-2026-W46.pdf"
    data = pdf.get_content()
    assert isinstance(data, bytes) and data.startswith(b"%PDF") and len(data) > 1000
    assert await worker.send_due() == 0  # sent once

"""The mail outbox: queued in the cause's transaction, sent once over real SMTP (aiosmtpd),
retried while the server is down, given up after the last retry."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from gateway.dev_mail import MailCatcher
from metering.notify.mail import Mailer, MailWorker, SmtpServer, enqueue_mail
from tests.metering.notify_env import Clock, closed_port


async def _queue(pool: asyncpg.Pool, key: str, recipients: list[str]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await enqueue_mail(conn, None, recipients, "Subject é", "Body\nline 2", key)


async def test_a_mail_waits_while_smtp_is_down_then_goes_once(
        pg_pool: asyncpg.Pool, mail_catcher: tuple[MailCatcher, str]) -> None:
    assert await _queue(pg_pool, "k1", ["a@example.com", "b@example.com"]) == 2
    assert await _queue(pg_pool, "k1", ["a@example.com"]) == 0  # the same cause: once
    clock = Clock()
    down = MailWorker(pg_pool, Mailer(SmtpServer("127.0.0.1", closed_port(), False), "x@y.z"),
                      clock=clock)
    assert await down.send_due() == 2
    rows = await pg_pool.fetch("SELECT status, attempts, last_error FROM mail_outbox")
    assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}
    assert all(r["last_error"] for r in rows)
    catcher, smtp_url = mail_catcher
    up = MailWorker(pg_pool, Mailer(SmtpServer.from_url(smtp_url), "Ops <x@y.z>"), clock=clock)
    assert await up.send_due() == 0  # not before the first retry delay
    clock.move(seconds=31)
    assert await up.send_due() == 2
    mails = await asyncio.wait_for(catcher.wait_for(2), 10)
    assert sorted(m.recipients[0] for m in mails) == ["a@example.com", "b@example.com"]
    assert mails[0].subject == "Subject é" and mails[0].body.strip() == "Body\nline 2"
    clock.move(days=1)
    assert await up.send_due() == 0


async def test_a_mail_is_given_up_after_the_last_retry(pg_pool: asyncpg.Pool) -> None:
    await _queue(pg_pool, f"k-{uuid.uuid4()}", ["a@example.com"])
    clock = Clock()
    down = MailWorker(pg_pool, Mailer(SmtpServer("127.0.0.1", closed_port(), False), "x@y.z"),
                      clock=clock, retry_s=(1, 1))
    for _ in range(3):
        assert await down.send_due() == 1
        clock.move(seconds=2)
    assert await down.send_due() == 0
    assert await pg_pool.fetchval("SELECT status FROM mail_outbox") == "failed"


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://mail.example.com") == SmtpServer(
        "mail.example.com", 25, False)
    assert SmtpServer.from_url("smtps://u%40x:p%2Fw@mail.example.com:2465") == SmtpServer(
        "mail.example.com", 2465, True, "u@x", "p/w")

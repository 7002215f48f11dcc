"""Metering services wired into the app: the credit store, the outbox sink, the sweeper,
the webhook delivery and mail workers.

Everything here runs in every gateway process; several processes cooperate (one
consumer group for the sink; sweeping is an idempotent Lua script per tenant;
webhook messages and mails are claimed with FOR UPDATE SKIP LOCKED and a lease).
Metering knows nothing of metrics: the store takes a timing hook, and the sink's own
counts and backlog are copied into the metrics from here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from api.context import CLOCK, CREDIT_STORE, PG_POOL, REDIS
from gateway.background import background_task
from gateway.metrics import Metrics
from gateway.state import METRICS, SCHEMA_READY, SETTINGS
from metering.billing.cycle import run_cycle
from metering.billing.reviews import review_ended_month
from metering.billing.tasks import open_follow_ups
from metering.cards import all_cards
from metering.credit_store import CreditStore
from metering.notify.alerts import sync_thresholds
from metering.notify.delivery import DeliveryWorker
from metering.notify.mail import Mailer, MailWorker, SmtpServer
from metering.number_fees import charge_number_fees
from metering.sink import Sink, SinkStats

log = logging.getLogger("voicegw.wiring")

SWEEP_EVERY_S = 5.0
NUMBER_FEES_EVERY_S = 3600.0
SINK_COUNTS_EVERY_S = 1.0
OUTBOX_BACKLOG_EVERY_S = 5.0
THRESHOLD_SYNC_EVERY_S = 300.0
# Cycles turn at midnight UTC on the 1st; a pass is one indexed query when nothing is due.
BILLING_CYCLE_EVERY_S = 60.0


async def _credit_store_ctx(app: web.Application) -> AsyncIterator[None]:
    durations = app[METRICS].credit_duration
    app[CREDIT_STORE] = CreditStore(
        app[REDIS], app[SETTINGS].redis_prefix,  # paused: metering.channels.paused_below
        on_timing=lambda op, seconds: durations.labels(op=op).observe(seconds),
    )
    yield


class SinkExport:
    """The sink's own counts (copied as increments since the last copy) and the outbox
    backlog (measured on the streams the sink already found), into the metrics."""

    def __init__(self, metrics: Metrics, sink: Sink) -> None:
        self.metrics = metrics
        self.sink = sink
        self._copied = SinkStats()

    def copy_counts(self) -> None:
        now, before, m = self.sink.stats, self._copied, self.metrics
        for counter, count, copied in ((m.sink_batches, now.batches, before.batches),
                                       (m.sink_events, now.events, before.events),
                                       (m.sink_claimed, now.claimed, before.claimed),
                                       (m.sink_failures, now.failures, before.failures)):
            if count > copied:
                counter.inc(count - copied)
        self._copied = replace(now)

    async def measure_backlog(self) -> None:
        backlog = await self.sink.backlog()
        self.metrics.outbox_entries.set(backlog.entries)
        self.metrics.outbox_oldest_age.set(backlog.oldest_age_s)

    async def run(self) -> None:
        backlog_due = 0.0
        while True:
            await asyncio.sleep(SINK_COUNTS_EVERY_S)
            self.copy_counts()
            if time.monotonic() < backlog_due:
                continue
            backlog_due = time.monotonic() + OUTBOX_BACKLOG_EVERY_S
            try:
                await self.measure_backlog()
            except Exception as exc:  # Redis away: the sink says so too; keep exporting
                self.metrics.redis_errors.labels(op="outbox_backlog").inc()
                log.debug("outbox backlog not measured: %s", exc)


async def run_sink(app: web.Application) -> None:
    sink = Sink(app[REDIS], app[PG_POOL], app[SETTINGS].redis_prefix)
    async with asyncio.TaskGroup() as group:
        group.create_task(sink.run(), name="outbox-sink-loop")
        group.create_task(SinkExport(app[METRICS], sink).run(), name="outbox-sink-metrics")


async def run_sweeper(app: web.Application) -> None:
    """Settles sessions whose reservation expired (their gateway died): no stranded credit."""
    store = app[CREDIT_STORE]
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        try:
            swept = await store.sweep_all(int(time.time() * 1000))
        except Exception as exc:
            app[METRICS].redis_errors.labels(op="sweep").inc()
            log.warning("sweep failed: %s", exc)
            continue
        if swept:
            log.info("swept %d expired sessions", len(swept))


async def run_number_fees(app: web.Application) -> None:
    """Charges each held number's fee for the current month, hourly (idempotent)."""
    while True:
        try:
            now = dt.datetime.now(dt.UTC)
            pool = app[PG_POOL]
            await charge_number_fees(pool, app[CREDIT_STORE], await all_cards(pool),
                                     now.date(), int(now.timestamp() * 1000))
        except Exception as exc:
            log.warning("number fee run failed: %s", exc)
        await asyncio.sleep(NUMBER_FEES_EVERY_S)


async def run_webhook_delivery(app: web.Application) -> None:
    await app[SCHEMA_READY].wait()
    worker = DeliveryWorker(app[PG_POOL],
                            allow_private=app[SETTINGS].webhooks_allow_private)
    await worker.run()


async def run_mail(app: web.Application) -> None:
    settings = app[SETTINGS]
    await app[SCHEMA_READY].wait()
    mailer = Mailer(SmtpServer.from_url(settings.smtp_url), settings.mail_from)
    await MailWorker(app[PG_POOL], mailer).run()


async def run_threshold_sync(app: web.Application) -> None:
    """Puts the low-balance thresholds back into Redis if it lost them (failover)."""
    await app[SCHEMA_READY].wait()
    while True:
        try:
            restored = await sync_thresholds(app[PG_POOL], app[CREDIT_STORE])
            if restored:
                log.info("restored %d low-balance thresholds", restored)
        except Exception as exc:
            log.warning("threshold sync failed: %s", exc)
        await asyncio.sleep(THRESHOLD_SYNC_EVERY_S)


async def run_billing_cycle(app: web.Application) -> None:
    """Opens each subscribed tenant's running cycle, grants its plan credits, expires the
    last cycle's unused ones and finalizes its invoice (docs/billing.md). Every gateway
    runs it; each step is idempotent and the invoice numbering is serialized."""
    await app[SCHEMA_READY].wait()
    while True:
        try:
            report = await run_cycle(app[PG_POOL], app[CREDIT_STORE], now=app[CLOCK](),
                                     issuer=app[SETTINGS].invoice_issuer)
            if report.finalized or report.grants or report.expiries:
                log.info("billing cycle: %d invoices finalized, %d grants, %d expiries",
                         len(report.finalized), len(report.grants), len(report.expiries))
        except Exception as exc:  # the next pass finishes what this one could not
            log.warning("billing cycle failed: %r", exc)
        await asyncio.sleep(BILLING_CYCLE_EVERY_S)


async def run_tariff_reviews(app: web.Application) -> None:
    """After each month's end (UTC), reviews the ended month once per tenant on a
    cost-cap, flat-rate or per-call tariff, and opens the follow-ups of offers unanswered
    for 7 days (docs/tariffs.md). Every gateway runs it; unique keys keep one review and
    one task per tenant and month."""
    await app[SCHEMA_READY].wait()
    while True:
        try:
            now = app[CLOCK]()
            flagged = [r for r in await review_ended_month(app[PG_POOL], now=now)
                       if r.task_id is not None]
            follow_ups = await open_follow_ups(app[PG_POOL], as_of=now)
            if flagged or follow_ups:
                log.info("tariff review: %d flagged, %d follow-ups opened", len(flagged),
                         len(follow_ups))
        except Exception as exc:  # the next pass does what this one could not
            log.warning("tariff review failed: %r", exc)
        await asyncio.sleep(BILLING_CYCLE_EVERY_S)


def wire_metering(app: web.Application) -> None:
    app.cleanup_ctx.append(_credit_store_ctx)
    if app[SETTINGS].run_sink:
        app.cleanup_ctx.append(background_task("outbox-sink", run_sink))
    app.cleanup_ctx.append(background_task("sweeper", run_sweeper))
    if app[SETTINGS].run_number_fees:
        app.cleanup_ctx.append(background_task("number-fees", run_number_fees))
    app.cleanup_ctx.append(background_task("webhook-delivery", run_webhook_delivery))
    app.cleanup_ctx.append(background_task("alert-thresholds", run_threshold_sync))
    if app[SETTINGS].smtp_url:
        app.cleanup_ctx.append(background_task("mail", run_mail))
    app.cleanup_ctx.append(background_task("billing-cycle", run_billing_cycle))
    app.cleanup_ctx.append(background_task("tariff-reviews", run_tariff_reviews))

"""Taking in what a webhook carries: store it (one transaction), then hand the new
inbound messages to the worker. Runs before the webhook is answered, so an answered
webhook is never lost: a message stored but not yet answered when the process dies is
taken over by another process's recovery loop when its lease runs out.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import orjson

from gateway.codecs.sms_segments import count_segments
from gateway.codecs.sms_webhook import InboundSms, SmsStatus
from gateway.codecs.whatsapp import WebhookBatch
from gateway.messaging import exchange, store
from gateway.messaging.deps import Messaging
from gateway.messaging.store import Inbound, NewInbound, StatusRow
from gateway.messaging.worker import Job

log = logging.getLogger("voicegw.messaging")


@dataclass(frozen=True)
class Intake:
    new: int  # messages stored now, to be answered
    duplicates: int  # messages stored before: acknowledged, nothing else
    statuses: int
    rejected: int  # items kept in webhook_rejects


def schedule(m: Messaging, messages: Sequence[Inbound]) -> int:
    started = 0
    for msg in messages:
        lane = f"{msg.tenant_id}:{msg.channel}:{msg.customer}"
        job = Job(f"{msg.channel}:{msg.vendor_id}", lane, partial(exchange.process, m, msg))
        started += m.worker.submit(job)
    return started


def _when(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(min(seconds, 32503680000), tz=dt.UTC)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


async def accept_whatsapp(m: Messaging, batch: WebhookBatch) -> Intake:
    rejects = [(s.reason, _json(s.raw)) for s in batch.skipped]
    async with m.pool.acquire() as conn, conn.transaction():
        ids = {x.phone_number_id for x in batch.messages} | {
            x.phone_number_id for x in batch.statuses}
        tenants = await store.tenants_by_whatsapp_id(conn, ids)
        rows: dict[str, NewInbound] = {}
        for msg in batch.messages:
            tenant = tenants.get(msg.phone_number_id)
            if tenant is None:
                rejects.append((f"no tenant holds phone_number_id {msg.phone_number_id}",
                                _json(msg.raw)))
                continue
            rows.setdefault(msg.message_id, NewInbound(
                "whatsapp", msg.message_id, tenant, msg.phone_number_id, msg.customer,
                msg.kind, msg.text, None, _when(msg.timestamp_s),
                {"item": msg.raw, "profile_name": msg.profile_name}))
        inserted = await store.record_inbound(conn, list(rows.values()))
        await store.record_statuses(conn, [StatusRow(
            "whatsapp", s.message_id, s.status, tenants.get(s.phone_number_id),
            _when(s.timestamp_s),
            [{"code": e.code, "title": e.title, "details": e.details} for e in s.errors],
            s.raw) for s in batch.statuses])
        await store.record_pricing(conn, [(s.message_id, tenants.get(s.phone_number_id),
                                           s.pricing, s.raw)
                                          for s in batch.statuses if s.pricing is not None])
        await store.record_rejects(conn, "whatsapp", rejects)
    schedule(m, inserted)
    return Intake(len(inserted), len(batch.messages) - len(inserted) - _unknown(rejects),
                  len(batch.statuses), len(rejects))


def _unknown(rejects: list[tuple[str, str]]) -> int:
    return sum(1 for reason, _ in rejects if reason.startswith("no tenant holds"))


async def accept_sms(m: Messaging, sms: InboundSms, raw: dict[str, list[str]]) -> Intake:
    segments = sms.num_segments or count_segments(sms.body)
    text = sms.body if sms.body.strip() else None
    row = NewInbound("sms", sms.message_sid, uuid.UUID(int=0), sms.to, sms.sender,
                     "text" if text else "media", text, segments, dt.datetime.now(dt.UTC),
                     {"item": raw})
    inserted, stored = await store.record_inbound_sms(m.pool, row)
    if not stored:
        await store.record_rejects(m.pool, "sms", [(f"no tenant holds {sms.to[:4]}…",
                                                    _json(raw))])
        return Intake(0, 0, 0, 1)
    schedule(m, [inserted] if inserted else [])
    return Intake(int(inserted is not None), int(inserted is None), 0, 0)


async def accept_sms_status(m: Messaging, status: SmsStatus, raw: dict[str, list[str]]) -> None:
    tenant: uuid.UUID | None = await store.tenant_of_message(m.pool, "sms", status.message_sid)
    errors = [] if status.error_code is None else [{"code": status.error_code}]
    async with m.pool.acquire() as conn:
        await store.record_statuses(conn, [StatusRow(
            "sms", status.message_sid, status.status, tenant, dt.datetime.now(dt.UTC), errors,
            raw)])

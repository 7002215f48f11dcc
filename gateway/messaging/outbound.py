"""A free-form message a tenant sends through `POST /v1/messages`, metered like any other.

    sender number -> (WhatsApp) our window check -> `metering.messages.send_paid_message`:
    reserve its exact cost -> send -> settle: its usage if the vendor took it, else nothing

The credit is reserved before the vendor is called, so a tenant cannot send what it
cannot pay for, and a refusal (our window check, Meta's 131047, any vendor error) settles
the session at zero: a refused message is never billed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from api.problems import Problem
from gateway.codecs.sms_segments import count_segments
from gateway.messaging import store
from gateway.messaging.deps import Messaging
from gateway.messaging.exchange import deliver
from gateway.messaging.store import Outbound
from metering.messages import PaidSendStatus, send_paid_message


class SendRefused(Problem):
    """The message was not sent; `code` is the stable problem code. A problem of the API's
    tree: the problem middleware answers it (with `vendor_code` when Meta gave one)."""

    def __init__(self, status: int, code: str, detail: str, vendor_code: int | None = None
                 ) -> None:
        super().__init__(status, code, detail)
        if vendor_code is not None:
            self.extra["vendor_code"] = vendor_code
        self.vendor_code = vendor_code


@dataclass(frozen=True)
class SentMessage:
    vendor_id: str
    channel: str
    to: str
    segments: int | None
    micro_credits: int


async def send_message(m: Messaging, tenant_id: uuid.UUID, channel: str, to: str,
                       text: str) -> SentMessage:
    tenant = str(tenant_id)
    sender = await store.sender_for(m.pool, tenant_id, channel)
    if sender is None:
        raise SendRefused(409, "no_sender_number",
                          f"the tenant holds no number that can send {channel} messages")
    if channel == "whatsapp" and not await m.windows.is_open(tenant, to, m.clock_ms()):
        raise SendRefused(409, "whatsapp_window_closed",
                          "the customer has not written in the last 24 hours; WhatsApp allows "
                          "free-form messages only inside that window")
    segments = count_segments(text) if channel == "sms" else None
    card = (await m.profiles.get(tenant_id)).card
    paid = await send_paid_message(m.credits, card=card, tenant=tenant, channel=channel,
                                   customer=to, segments=segments, clock_ms=m.clock_ms,
                                   deliver=lambda: deliver(m, channel, sender, to, text))
    sent = paid.delivery
    if paid.status is PaidSendStatus.INSUFFICIENT or sent is None:
        raise SendRefused(402, "insufficient_credits",
                          "the balance cannot pay for this message; top up to send it")
    if paid.status is PaidSendStatus.REFUSED or sent.vendor_id is None:
        if sent.window_closed:
            raise SendRefused(409, "whatsapp_window_closed",
                              "WhatsApp refused the message: outside the 24-hour window",
                              vendor_code=sent.error_code)
        raise SendRefused(502, "vendor_error", f"the {channel} provider refused the "
                          f"message: {sent.error}", vendor_code=sent.error_code)
    await store.record_outbound(m.pool, Outbound(channel, sent.vendor_id, tenant_id, sender, to,
                                                 "api", text, segments,
                                                 session_id=paid.session_id))
    m.handled.labels(channel=channel, outcome="api_sent").inc()
    return SentMessage(sent.vendor_id, channel, to, segments, paid.billed_micro)

"""The billing operations of the messaging channels (WhatsApp and SMS), one function each
with keyword arguments and a typed result; the gateway's channel wiring only calls them.

- `charge_inbound_message`: every inbound message is a one-shot charge whose event id
  derives from the vendor's message id (`<wa|sms>-<id>:in`): `sms_received_segments`
  priced per segment, `whatsapp_messages` counted at no cost. A charge the balance cannot
  cover is `PENDING`: the caller keeps it and retries until the tenant tops up.
- `record_free_notice`: a paused notice is usage at 0 credits (counted, never billed).
- `send_paid_message`: a message a tenant sends (`POST /v1/messages`): its exact cost is
  reserved before the vendor is called, billed if the vendor took it, nothing otherwise.
- `affordable_reply_segments` / `reply_usage`: what an answer inside an exchange's credit
  session may send (an SMS reply is cut to the segments the held credit buys) and what
  its settlement bills.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from metering.channels import MAX_REPLY_SEGMENTS, SessionPolicy
from metering.control import CreditSession
from metering.credit_store import CreditStore
from metering.meters import Meter
from metering.ratecard import RateCard
from metering.rating import rate_meter, rate_usage

PAID_SEND_VALIDITY_MS = 60_000  # the hold of a paid send outlives any vendor call


def event_prefix(channel: str) -> str:
    return "wa" if channel == "whatsapp" else "sms"


def inbound_usage(channel: str, segments: int | None) -> tuple[str, int]:
    if channel == "whatsapp":
        return Meter.WHATSAPP_MESSAGES.value, 1
    return Meter.SMS_RECEIVED_SEGMENTS.value, max(segments or 1, 1)


def outbound_usage(channel: str, segments: int | None) -> dict[str, int]:
    if channel == "whatsapp":
        return {Meter.WHATSAPP_MESSAGES.value: 1}
    return {Meter.SMS_SENT_SEGMENTS.value: max(segments or 1, 1)}


class ChargeStatus(StrEnum):
    CHARGED = "charged"
    REPLAY = "replay"  # charged before under the same event id: nothing more
    PENDING = "pending"  # the balance cannot cover it: keep it and retry later


@dataclass(frozen=True)
class MessageCharge:
    status: ChargeStatus
    event_id: str
    meter: str
    units: int
    micro: int  # the price of the message (charged, or still owed when PENDING)


async def _charge(credits: CreditStore, *, tenant: str, channel: str, event_id: str,
                  meter: str, units: int, micro: int, now_ms: int) -> MessageCharge:
    result = await credits.charge(tenant, event_id, channel=channel, micro=micro,
                                  usage={meter: units}, now_ms=now_ms)
    status = ChargeStatus.PENDING if result.status == "insufficient" else ChargeStatus(
        result.status)
    return MessageCharge(status, event_id, meter, units, micro)


async def charge_inbound_message(credits: CreditStore, *, card: RateCard, tenant: str,
                                 channel: str, vendor_id: str, segments: int | None,
                                 now_ms: int) -> MessageCharge:
    """The one-shot charge of a received message (idempotent on its event id)."""
    meter, units = inbound_usage(channel, segments)
    return await _charge(credits, tenant=tenant, channel=channel,
                         event_id=f"{event_prefix(channel)}-{vendor_id}:in", meter=meter,
                         units=units, micro=rate_meter(card.rate(meter), units),
                         now_ms=now_ms)


async def record_free_notice(credits: CreditStore, *, tenant: str, channel: str,
                             vendor_id: str, segments: int | None, now_ms: int
                             ) -> MessageCharge:
    """A paused notice sent: its usage at 0 credits (a paused tenant pays for nothing but
    what it received)."""
    ((meter, units),) = outbound_usage(channel, segments).items()
    return await _charge(credits, tenant=tenant, channel=channel,
                         event_id=f"{event_prefix(channel)}-{vendor_id}:notice", meter=meter,
                         units=units, micro=0, now_ms=now_ms)


def affordable_reply_segments(card: RateCard, held_micro: int) -> int:
    """How many SMS segments (at most MAX_REPLY_SEGMENTS) the held credit pays; 0: none."""
    rate = card.rate(Meter.SMS_SENT_SEGMENTS)
    for segments in range(MAX_REPLY_SEGMENTS, 0, -1):
        if rate_meter(rate, segments) <= held_micro:
            return segments
    return 0


def reply_usage(channel: str, segments: int | None) -> dict[str, int]:
    """The usage a sent reply adds to its exchange's settlement."""
    return outbound_usage(channel, segments)


class Delivery(Protocol):
    """What a vendor call reports back: `vendor_id` is None when nothing was sent."""

    @property
    def vendor_id(self) -> str | None: ...

    @property
    def error_code(self) -> int | None: ...


D = TypeVar("D", bound=Delivery)


class PaidSendStatus(StrEnum):
    SENT = "sent"  # the vendor took it: billed its cost
    INSUFFICIENT = "insufficient"  # the balance cannot pay: not sent, nothing billed
    REFUSED = "refused"  # the vendor did not take it: settled at zero


@dataclass(frozen=True)
class PaidSend(Generic[D]):
    status: PaidSendStatus
    cost_micro: int  # the message's price on the tenant's card
    billed_micro: int
    session_id: str
    delivery: D | None  # None when nothing was sent (INSUFFICIENT)


async def send_paid_message(credits: CreditStore, *, card: RateCard, tenant: str,
                            channel: str, customer: str, segments: int | None,
                            clock_ms: Callable[[], int],
                            deliver: Callable[[], Awaitable[D]]) -> PaidSend[D]:
    """Reserve the message's exact cost, `deliver` it, settle: its usage if the vendor
    took it, nothing if it refused (a refused message is never billed)."""
    usage = outbound_usage(channel, segments)
    cost = rate_usage(card, usage).total
    policy = SessionPolicy(channel, cost, 0, cost, PAID_SEND_VALIDITY_MS, 0)
    session = CreditSession(credits, card, policy, tenant, f"api-{uuid.uuid4().hex}",
                            clock_ms, meta={"kind": "api", "customer": customer})
    grant = await session.start()
    if not grant.ok or grant.held < cost:
        if grant.ok:
            await session.finish(details={"outcome": "insufficient"})
        return PaidSend(PaidSendStatus.INSUFFICIENT, cost, 0, session.session_id, None)
    sent = await deliver()
    if sent.vendor_id is None:
        await session.finish(details={"outcome": "refused", "vendor_code": sent.error_code})
        return PaidSend(PaidSendStatus.REFUSED, cost, 0, session.session_id, sent)
    settled = await session.finish(details={"outcome": "sent", "message": sent.vendor_id},
                                   usage=usage)
    return PaidSend(PaidSendStatus.SENT, cost, settled.billed, session.session_id, sent)

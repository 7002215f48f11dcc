"""The billing operations of the messaging channels, each with its typed result."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from metering.credit_store import CreditStore
from metering.messages import (
    ChargeStatus,
    PaidSendStatus,
    affordable_reply_segments,
    charge_inbound_message,
    record_free_notice,
    send_paid_message,
)
from metering.ratecard import MICRO, default_rate_card

CARD = default_rate_card()
T = "tenant-m"
SEGMENT = 2_500 * MICRO  # sms_sent_segments on the default card


@dataclass(frozen=True)
class Answer:
    """What a vendor call reports (the gateway's `Sent` has the same two fields)."""

    vendor_id: str | None
    error_code: int | None = None


def _clock() -> int:
    return 1_000_000


async def test_an_inbound_sms_is_charged_once_and_waits_when_unpaid(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = CreditStore(redis_client, key_prefix)
    unpaid = await charge_inbound_message(store, card=CARD, tenant=T, channel="sms",
                                          vendor_id="SM1", segments=2, now_ms=1)
    assert unpaid.status is ChargeStatus.PENDING
    assert (unpaid.event_id, unpaid.meter, unpaid.units) == ("sms-SM1:in",
                                                             "sms_received_segments", 2)
    await store.apply_topup(T, "t1", 10_000 * MICRO)
    charged = await charge_inbound_message(store, card=CARD, tenant=T, channel="sms",
                                           vendor_id="SM1", segments=2, now_ms=2)
    assert charged.status is ChargeStatus.CHARGED and charged.micro == unpaid.micro > 0
    again = await charge_inbound_message(store, card=CARD, tenant=T, channel="sms",
                                         vendor_id="SM1", segments=2, now_ms=3)
    assert again.status is ChargeStatus.REPLAY
    assert (await store.balance(T)).billed == charged.micro


async def test_whatsapp_in_and_paused_notices_cost_nothing(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = CreditStore(redis_client, key_prefix)
    inbound = await charge_inbound_message(store, card=CARD, tenant=T, channel="whatsapp",
                                           vendor_id="wamid.1", segments=None, now_ms=1)
    notice = await record_free_notice(store, tenant=T, channel="sms", vendor_id="SM2",
                                      segments=1, now_ms=1)
    assert inbound.status is notice.status is ChargeStatus.CHARGED  # at 0, even unfunded
    assert (inbound.event_id, notice.event_id) == ("wa-wamid.1:in", "sms-SM2:notice")
    assert inbound.micro == notice.micro == 0


async def test_a_paid_send_bills_only_what_the_vendor_took(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = CreditStore(redis_client, key_prefix)
    calls: list[str] = []

    async def deliver(answer: Answer) -> Answer:
        calls.append(str(answer.vendor_id))
        return answer

    poor = await send_paid_message(store, card=CARD, tenant=T, channel="sms", customer="+1",
                                   segments=1, clock_ms=_clock,
                                   deliver=lambda: deliver(Answer("SM3")))
    assert poor.status is PaidSendStatus.INSUFFICIENT and poor.delivery is None
    assert calls == []  # nothing sent that the balance could not pay
    await store.apply_topup(T, "t1", 10_000 * MICRO)
    refused = await send_paid_message(store, card=CARD, tenant=T, channel="sms",
                                      customer="+1", segments=2, clock_ms=_clock,
                                      deliver=lambda: deliver(Answer(None, 21610)))
    assert refused.status is PaidSendStatus.REFUSED and refused.billed_micro == 0
    assert refused.delivery == Answer(None, 21610)
    sent = await send_paid_message(store, card=CARD, tenant=T, channel="sms", customer="+1",
                                   segments=2, clock_ms=_clock,
                                   deliver=lambda: deliver(Answer("SM4")))
    assert sent.status is PaidSendStatus.SENT
    assert sent.billed_micro == sent.cost_micro == 2 * SEGMENT
    balance = await store.balance(T)
    assert (balance.billed, balance.reserved) == (2 * SEGMENT, 0)


def test_an_sms_reply_is_cut_to_what_the_held_credit_buys() -> None:
    assert affordable_reply_segments(CARD, 10 * SEGMENT) == 3  # MAX_REPLY_SEGMENTS
    assert affordable_reply_segments(CARD, 2 * SEGMENT) == 2
    assert affordable_reply_segments(CARD, SEGMENT - 1) == 0

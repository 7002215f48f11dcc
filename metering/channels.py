"""Every channel's credit policy and the one rule of "paused" (docs/metering.md, "Paused").

Two questions, answered here only, for every caller (the balance API, the credit
scripts' balance alerts, the voice webhook, the messaging worker, the CLI):
- is the tenant **paused**? Its available balance is below `paused_below(card)`, the
  cheapest billable step of the rate card: it can buy nothing. The credit store compiles
  this into its scripts (`PAUSED_BELOW`, for `balance.depleted` / `balance.restored`) and
  answers it in `Balance.paused`; `is_paused` is the same comparison.
- does a **channel** run? The available balance reaches `needed_to_run(channel)`, the
  minimum grant of the channel's policy (below it no session starts; the reservation
  itself enforces it atomically):
  - phone: PHONE_POLICY's minimum grant (5 credits);
  - whatsapp: CHAT_POLICY's minimum grant (0.1 credit);
  - sms: one reply segment plus a short prompt's tokens (`sms_policy`; 2,520 credits on
    the default card), since an SMS answer that cannot pay for its one segment is never
    sent.
  Every minimum grant is at least the cheapest step (tests/metering/test_channels.py), so
  a paused tenant runs no channel.

May import: the rest of `metering` below the credit store (rate cards, rating, meters):
`credit_store` and `control` import this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from metering.meters import Meter
from metering.ratecard import MICRO, RateCard, default_rate_card
from metering.rating import rate_meter, smallest_billable_micro

CHANNELS = ("phone", "whatsapp", "sms")
MAX_REPLY_SEGMENTS = 3  # an SMS reply is cut (between graphemes) to at most this many


@dataclass(frozen=True)
class SessionPolicy:
    channel: str
    slice_micro: int  # how much credit a session holds after each renewal
    renew_below_micro: int  # renew when less than this is left of the hold
    min_grant_micro: int  # below this available balance, no session starts
    validity_ms: int  # a hold not renewed within this is swept
    overdraft_limit_micro: int  # the most a session may be debited beyond its grants
    record_every_ms: int = 0  # record usage this often between renewals (0: only renew)


# A phone minute costs about 95 credits of connection plus 300-900 credits of voice
# tokens. A slice of 600 credits lasts roughly a minute; renewal at 200 left leaves
# 15-30 s of margin for the round trip. The overdraft limit covers the goodbye said after
# the last grant ran out: ~10 s of call and ~300 output tokens.
PHONE_POLICY = SessionPolicy("phone", 600 * MICRO, 200 * MICRO, 5 * MICRO, 120_000,
                             200 * MICRO)
CHAT_POLICY = SessionPolicy("whatsapp", 100 * MICRO, 30 * MICRO, MICRO // 10, 300_000,
                            50 * MICRO)


def paused_below(card: RateCard | None = None) -> int:
    """The available balance (micro-credits) below which a tenant is paused: the cheapest
    billable step of `card` (default: the default rate card, which the credit store uses)."""
    return smallest_billable_micro(card or default_rate_card())


def is_paused(available_micro: int, card: RateCard | None = None) -> bool:
    return available_micro < paused_below(card)


def sms_segment_micro(card: RateCard) -> int:
    return rate_meter(card.rate(Meter.SMS_SENT_SEGMENTS), 1)


def sms_policy(card: RateCard) -> SessionPolicy:
    """Holds enough for the tokens and a reply of MAX_REPLY_SEGMENTS; starts only when the
    tenant can afford one segment and a short prompt."""
    segment = sms_segment_micro(card)
    return SessionPolicy("sms", 100 * MICRO + MAX_REPLY_SEGMENTS * segment, 30 * MICRO,
                         segment + 20 * MICRO, 300_000, 50 * MICRO)


def channel_policy(channel: str, card: RateCard | None = None) -> SessionPolicy:
    """The channel's credit policy; only SMS depends on the card (its segment price)."""
    if channel == "phone":
        return PHONE_POLICY
    if channel == "whatsapp":
        return CHAT_POLICY
    if channel == "sms":
        if card is None:
            raise ValueError("the SMS policy depends on the tenant's rate card")
        return sms_policy(card)
    raise ValueError(f"unknown channel {channel!r}")


def needed_to_run(channel: str, card: RateCard | None = None) -> int:
    """The available balance (micro-credits) below which `channel` does not serve."""
    return channel_policy(channel, card).min_grant_micro


def can_run(channel: str, available_micro: int, card: RateCard | None = None) -> bool:
    return available_micro >= needed_to_run(channel, card)


def paused_channels(card: RateCard, available_micro: int) -> list[str]:
    """The channels the balance cannot run, in CHANNELS order (empty: all run)."""
    return [c for c in CHANNELS if not can_run(c, available_micro, card)]

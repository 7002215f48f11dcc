"""What each channel needs to run: the one rule behind `paused_channels` in the balance
API and behind the SMS path's "not sent for lack of credit".

A channel runs when the tenant's available balance reaches the minimum grant of its
credit policy (below it no session starts):
- phone: PHONE_POLICY's minimum grant (5 credits);
- whatsapp: CHAT_POLICY's minimum grant (0.1 credit);
- sms: one reply segment plus a short prompt's tokens (`sms_policy`; 2,520 credits on the
  default card), since an SMS answer that cannot pay for its one segment is never sent.
"""

from __future__ import annotations

from metering.control import CHAT_POLICY, PHONE_POLICY, SessionPolicy
from metering.meters import Meter
from metering.ratecard import MICRO, RateCard
from metering.rating import rate_meter

CHANNELS = ("phone", "whatsapp", "sms")
MAX_REPLY_SEGMENTS = 3  # an SMS reply is cut (between graphemes) to at most this many


def sms_segment_micro(card: RateCard) -> int:
    return rate_meter(card.rate(Meter.SMS_SENT_SEGMENTS), 1)


def sms_policy(card: RateCard) -> SessionPolicy:
    """Holds enough for the tokens and a reply of MAX_REPLY_SEGMENTS; starts only when the
    tenant can afford one segment and a short prompt."""
    segment = sms_segment_micro(card)
    return SessionPolicy("sms", 100 * MICRO + MAX_REPLY_SEGMENTS * segment, 30 * MICRO,
                         segment + 20 * MICRO, 300_000, 50 * MICRO)


def channel_policy(channel: str, card: RateCard) -> SessionPolicy:
    if channel == "phone":
        return PHONE_POLICY
    if channel == "whatsapp":
        return CHAT_POLICY
    if channel == "sms":
        return sms_policy(card)
    raise ValueError(f"unknown channel {channel!r}")


def needed_to_run(channel: str, card: RateCard) -> int:
    """The available balance (micro-credits) below which `channel` does not serve."""
    return channel_policy(channel, card).min_grant_micro


def paused_channels(card: RateCard, available_micro: int) -> list[str]:
    """The channels the balance cannot run, in CHANNELS order (empty: all run)."""
    return [c for c in CHANNELS if available_micro < needed_to_run(c, card)]

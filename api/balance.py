"""A tenant's live balance as the API shows it.

Credits are exact decimal strings with six decimals ("12.500000"); the same amounts are
also given as integer micro-credits (`*_micro_credits`) for clients that prefer integers.
`paused` is true below the cheapest billable step of any meter; `paused_channels` names
each channel the balance cannot run (metering/channels.py holds the rule), e.g. `["sms"]`
when it covers chat tokens but not one SMS segment.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from api.context import CREDIT_STORE, PG_POOL
from api.models import Balance
from metering.cards import card_for_tenant
from metering.channels import paused_channels
from metering.money import format_credits


async def balance_of(app: web.Application, tenant_id: uuid.UUID) -> Balance:
    balance = await app[CREDIT_STORE].balance(str(tenant_id))
    card = await card_for_tenant(app[PG_POOL], tenant_id)
    return Balance(
        available_credits=format_credits(balance.available),
        reserved_credits=format_credits(balance.reserved),
        paused=balance.paused,
        paused_channels=list(paused_channels(card, balance.available)),
        available_micro_credits=balance.available,
        reserved_micro_credits=balance.reserved,
    )

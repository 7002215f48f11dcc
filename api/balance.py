"""A tenant's live balance as the API shows it.

Credits are exact decimal strings with six decimals ("12.500000"); the same amounts are
also given as integer micro-credits (`*_micro_credits`) for clients that prefer integers.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from api.context import CREDIT_STORE
from metering.money import format_credits


async def balance_json(app: web.Application, tenant_id: uuid.UUID) -> dict[str, Any]:
    balance = await app[CREDIT_STORE].balance(str(tenant_id))
    return {
        "available_credits": format_credits(balance.available),
        "reserved_credits": format_credits(balance.reserved),
        "paused": balance.paused,
        "available_micro_credits": balance.available,
        "reserved_micro_credits": balance.reserved,
    }

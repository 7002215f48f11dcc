"""Rate cards with extreme prices or unit fields are refused by POST /admin/tenants."""

from __future__ import annotations

from typing import Any

import pytest

from api.context import PG_POOL
from metering.bounds import MAX_PRICE_CREDITS, MAX_UNITS
from tests.api.conftest import ADMIN, Client

TOO_MANY = MAX_UNITS + 1


def _card(**fields: Any) -> dict[str, Any]:
    return {"inherit": "default",
            "meters": {"call_seconds": {"price": "95", "block": 60000, **fields}}}


@pytest.mark.parametrize(("card", "field"), [
    (_card(price="1e30"), "call_seconds.price"),
    (_card(price="1e-30"), "call_seconds.price"),
    (_card(price="NaN"), "call_seconds.price"),
    (_card(price="sNaN"), "call_seconds.price"),
    (_card(price="Infinity"), "call_seconds.price"),
    (_card(price="-Infinity"), "call_seconds.price"),
    (_card(price=10**30), "call_seconds.price"),
    (_card(price=str(MAX_PRICE_CREDITS + 1)), "call_seconds.price"),
    (_card(price="0.0000000000001"), "call_seconds.price"),  # 13 decimal places
    (_card(price="1" + "0" * 60), "call_seconds.price"),
    (_card(price="-1"), "call_seconds.price"),
    (_card(block=TOO_MANY), "call_seconds.block"),
    (_card(block=10**40), "call_seconds.block"),
    (_card(increment=TOO_MANY), "call_seconds.increment"),
    (_card(minimum=TOO_MANY), "call_seconds.minimum"),
    (_card(free_allowance=TOO_MANY), "call_seconds.free_allowance"),
    (_card(tiers=[{"up_to": TOO_MANY, "price": "1"}, {"price": "1"}]),
     "call_seconds.tiers[0].up_to"),
    (_card(tiers=[{"up_to": 10, "price": "1"}, {"price": "1e30"}]),
     "call_seconds.tiers[1].price"),
])
async def test_extreme_rate_card_values_are_422_naming_the_field(
    client: Client, card: dict[str, Any], field: str
) -> None:
    response = await client.post("/admin/tenants", json={"name": "X", "rate_card": card},
                                 headers=ADMIN)
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["code"] == "invalid_field"
    assert problem["field"] == "rate_card"
    assert problem["rate_card_field"] == field
    assert field in problem["detail"]
    assert await client.app[PG_POOL].fetchval("SELECT count(*) FROM tenants") == 0


async def test_prices_and_fields_at_their_maxima_are_accepted(client: Client) -> None:
    card = {"inherit": "default", "meters": {
        "call_seconds": {"price": str(MAX_PRICE_CREDITS), "block": MAX_UNITS,
                         "increment": MAX_UNITS, "minimum": MAX_UNITS,
                         "free_allowance": MAX_UNITS},
        "chat_input_tokens": {"price": "0.000000000001",
                              "tiers": [{"up_to": MAX_UNITS, "price": "0.000000000001"},
                                        {"price": "1.500000000000000000"}]}}}
    response = await client.post("/admin/tenants", json={"name": "Edge", "rate_card": card},
                                 headers=ADMIN)
    assert response.status == 201, await response.text()

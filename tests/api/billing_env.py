"""Seed 000's plan as the operator posts it (the billing API tests)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ADMIN, Client


def plan_body(**changes: Any) -> dict[str, Any]:
    """Seed 000's plan without a setup fee: 4,950.00 a month, 12.00 per success (TRY)."""
    body: dict[str, Any] = {"id": "growth", "name": "Growth", "currency": "TRY",
                            "setup_fee": "0.00", "monthly_fee": "4950.00",
                            "success_fee": "12.00", "included_credits": 150000,
                            "credit_rollover": True}
    body.update(changes)
    return body


async def create_plan(client: Client, **changes: Any) -> dict[str, Any]:
    response = await client.post("/admin/plans", json=plan_body(**changes), headers=ADMIN)
    assert response.status in (200, 201), await response.text()
    created: dict[str, Any] = await response.json()
    return created

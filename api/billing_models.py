"""Models of the billing API: plans, subscriptions, successes, invoices (docs/billing.md).

Request models refuse unknown members (a typo in `monthly_fee` must not create a plan
without one). Amounts are decimal strings with the currency's minor digits beside
`currency`; `metering.billing` checks what a schema cannot (the currency's exponent, a
known currency, a date that exists) and names the member the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models import Answer, Instant
from metering.bounds import MAX_TOPUP_CREDITS

AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,6})?$"
PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"  # 2000-01 to 2999-12
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
PLAN_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SUCCESS_KINDS = Literal["appointment_booked", "ticket_created", "order_placed"]
Amount = Field(pattern=AMOUNT_PATTERN, max_length=24, examples=["4950.00"],
               description="a decimal string with at most the currency's minor digits")


class StrictRequest(BaseModel):
    """A JSON body: exact types, and no member the API does not know."""

    model_config = ConfigDict(strict=True, extra="forbid")


class ListQuery(BaseModel):
    """`?cursor=&limit=` of every list (`next_cursor` of the previous page)."""

    model_config = ConfigDict(strict=False, extra="ignore")
    cursor: str | None = Field(None, max_length=512,
                               description="`next_cursor` of the previous page")
    limit: int = Field(50, ge=1, le=100)


# ---- plans ----------------------------------------------------------------------------

class CreatePlan(StrictRequest):
    id: str = Field(pattern=PLAN_ID_PATTERN, examples=["growth"])
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["TRY"],
                          description="ISO 4217 code")
    setup_fee: str = Amount
    monthly_fee: str = Amount
    success_fee: str = Amount
    included_credits: int = Field(0, ge=0, le=MAX_TOPUP_CREDITS,
                                  description="whole credits granted each cycle")
    credit_rollover: bool = False
    rate_card: dict[str, Any] | None = Field(
        None, description="the rate card of the plan's tenants (docs/rate-cards.md)")
    billing: Literal["prepaid", "postpaid"] = Field(
        "prepaid", description="postpaid: `credit_limit` and `tariff` (docs/tariffs.md)")
    credit_limit: int | None = Field(
        None, ge=0, le=MAX_TOPUP_CREDITS,
        description="postpaid: credits usable per cycle before services pause (granted "
                    "each cycle, no rollover)")
    tariff: dict[str, Any] | None = Field(
        None, description="postpaid: usage, cost_cap, flat_rate or per_call "
                          "(docs/tariffs.md)")


class Plan(Answer):
    id: str
    version: int = Field(description="a changed definition is a new version")
    name: str
    currency: str
    setup_fee: str
    monthly_fee: str
    success_fee: str
    included_credits: int
    credit_rollover: bool
    rate_card: dict[str, Any] | None
    created_at: Instant
    billing: Literal["prepaid", "postpaid"]
    credit_limit: int | None
    tariff: dict[str, Any] | None


class PlanList(Answer):
    plans: list[Plan]
    next_cursor: str | None


class PlanTerm(Plan):
    effective_from: str = Field(description="the first day billed on this plan (YYYY-MM-DD)")


class TenantPlan(Answer):
    current: PlanTerm | None = Field(description="the plan billed in the running cycle")
    pending: PlanTerm | None = Field(description="the plan the next cycle moves to")


class PlanChanged(TenantPlan):
    change: Literal["started", "scheduled", "cancelled", "unchanged"] = Field(
        description="started: the first subscription, at once (setup fee, plan credits); "
                    "scheduled: from the next cycle; cancelled: the pending change dropped")


class ChoosePlan(StrictRequest):
    plan_id: str = Field(min_length=1, max_length=63)


class AssignPlan(ChoosePlan):
    start: str | None = Field(None, pattern=DATE_PATTERN, examples=["2026-11-01"], description=(
        "back-dates a first subscription within the running cycle (YYYY-MM-DD)"))


# ---- successes ------------------------------------------------------------------------

class CreateSuccess(StrictRequest):
    kind: SUCCESS_KINDS
    reference: str | None = Field(None, min_length=1, max_length=200)
    customer: str | None = Field(None, min_length=1, max_length=200)
    occurred_at: str | None = Field(None, max_length=40, json_schema_extra={
        "format": "date-time"}, description="RFC 3339 with an offset (default: now)")


class Success(Answer):
    id: str
    kind: str
    source: Literal["agent", "api"]
    channel: str
    session_id: str | None
    reference: str | None
    customer: str | None
    occurred_at: Instant
    recorded_at: Instant = Field(description="decides the invoice that bills it")


class SuccessList(Answer):
    successes: list[Success]
    next_cursor: str | None


class SuccessQuery(ListQuery):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: str | None = Field(None, alias="from", max_length=40, description=(
        "RFC 3339 time with an offset, inclusive (occurred_at)"))
    to: str | None = Field(None, max_length=40, description="RFC 3339, exclusive")
    kind: SUCCESS_KINDS | None = None


# ---- invoices -------------------------------------------------------------------------

class InvoiceLine(Answer):
    kind: Literal["setup_fee", "monthly_fee", "success_fee", "usage", "cost_cap", "flat_rate",
                  "per_call"]
    description: str
    quantity: int
    unit_price: str
    amount: str


class InvoicePlan(Answer):
    id: str
    version: int


class Invoice(Answer):
    id: str
    number: str | None = Field(description="assigned at finalization: VGW-2026-000042")
    period: str = Field(examples=["2026-11"])
    status: Literal["draft", "finalized", "paid", "void"]
    currency: str
    plan: InvoicePlan
    lines: list[InvoiceLine]
    total: str
    successes: int
    cost_per_success: str | None = Field(description="total / successes, 2 decimals, half-up")
    credits_used: dict[str, str] = Field(description="credits by meter (informational)")
    credits_used_micro_credits: dict[str, int]
    finalized_at: Instant | None
    paid_at: Instant | None
    voided_at: Instant | None


class InvoiceList(Answer):
    invoices: list[Invoice]
    next_cursor: str | None


class ClosePeriod(StrictRequest):
    period: str = Field(pattern=PERIOD_PATTERN, examples=["2026-11"])


class FinalizedInvoice(Answer):
    invoice_id: str
    number: str


class PeriodClosed(Answer):
    period: str
    finalized: list[FinalizedInvoice] = Field(description="invoices finalized by this call")


"""Models of the tariff review API: reviews, tasks, templates, the billing e-mail
(docs/tariffs.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.billing_models import PERIOD_PATTERN, InvoicePlan, StrictRequest
from api.models import Answer, Instant

TASK_STATUSES = Literal["open", "offer_sent", "follow_up", "accepted", "declined", "closed"]
TEMPLATE_NAMES = Literal["cost_cap_offer", "cost_cap_follow_up", "flat_rate_offer",
                         "flat_rate_follow_up", "per_call_offer", "per_call_follow_up"]
TARIFFS = Literal["cost_cap", "flat_rate", "per_call"]
EMAIL_PATTERN = r"^[^@\s<>,\x00-\x1f]+@[^@\s<>,\x00-\x1f]+$"


class RunReview(StrictRequest):
    period: str = Field(pattern=PERIOD_PATTERN, examples=["2026-12"])
    open_tasks: bool = Field(False, description="open tasks for flagged tenants of a month "
                                                "not yet ended (an ended month always does)")


class ReviewResult(Answer):
    tenant_id: str
    tenant_name: str
    tariff: TARIFFS
    period: str
    preliminary: bool = Field(description="the month has not ended yet")
    flagged: bool
    figures: dict[str, Any] = Field(description="minutes, calls and the tariff's figures")
    offer: dict[str, Any] | None = Field(description="price and the proposed tariff")
    task_id: str | None


class ReviewList(Answer):
    results: list[ReviewResult]


class TaskQuery(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore")
    status: TASK_STATUSES | None = None
    kind: TEMPLATE_NAMES | None = None


class Task(Answer):
    id: str
    tenant_id: str
    tenant_name: str
    billing_email: str | None
    kind: TEMPLATE_NAMES
    tariff: TARIFFS
    period: str
    status: TASK_STATUSES
    plan: InvoicePlan
    currency: str
    figures: dict[str, Any]
    offer: dict[str, Any] | None
    follows_task_id: str | None = Field(description="a follow-up: the task it follows")
    offer_text: str | None = Field(description="the text as sent")
    offer_to: str | None
    offer_sent_at: Instant | None
    last_error: str | None = Field(description="why the last send failed")
    outcome_note: str | None
    resolved_at: Instant | None
    applied_plan_id: str | None = Field(description="accepted: the plan from the next cycle")
    created_at: Instant


class TaskList(Answer):
    tasks: list[Task]


class Salutation(StrictRequest):
    salutation: str = Field(min_length=1, max_length=200, examples=["Dear Ms Hansen"])


class SendOffer(Salutation):
    to: str | None = Field(None, min_length=3, max_length=254, pattern=EMAIL_PATTERN,
                           description="default: the tenant's billing_email")


class RenderedOffer(Answer):
    to: str | None
    subject: str
    text: str


class ResolveTask(StrictRequest):
    outcome: Literal["accepted", "declined", "closed"]
    note: str | None = Field(None, max_length=2000)


class Template(Answer):
    name: TEMPLATE_NAMES
    text: str
    is_default: bool
    updated_at: Instant | None
    placeholders: dict[str, str] = Field(description="what {0}, {1}, ... stand for")


class TemplateList(Answer):
    templates: list[Template]


class TemplateText(StrictRequest):
    text: str = Field(min_length=1, max_length=20000)


class BillingEmail(StrictRequest):
    billing_email: str | None = Field(min_length=3, max_length=254,
                                      pattern=EMAIL_PATTERN)


class TenantBillingEmail(Answer):
    tenant_id: str
    billing_email: str | None

"""Models of the KPI API: `GET /v1/kpis`, `GET /v1/kpis/commentary` and
`GET /v1/reports/weekly` (docs/kpis.md has each KPI's definition)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.models import Answer, Credits

Rate = Field(ge=0, le=1, description="a decimal 0..1 with 4 places; null when undefined")
Outbound = Field(description="outbound campaigns' KPI: null until campaigns exist")


class KpiQueryParams(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: str | None = Field(None, alias="from", description=(
        "first day, YYYY-MM-DD in the tenant's time zone (default: 29 days before `to`)"))
    to: str | None = Field(None, description="last day, inclusive (default: today)")
    channel: str | None = Field(None, description="phone, whatsapp, sms or web (default: all)")
    direction: str | None = Field(None, description="inbound or outbound (default: both)")
    granularity: str | None = Field(None, description="day (default), week or month")


class RangeQuery(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: str | None = Field(None, alias="from", description="first day, YYYY-MM-DD")
    to: str | None = Field(None, description="last day, inclusive")


class WeekQuery(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore")
    week: str | None = Field(None, description="ISO week, e.g. 2026-W48 (default: last week)")


class CostPerSuccess(Answer):
    credits: str | None = Field(description="credits used / successes, six decimals")
    micro_credits: int | None
    money: str | None = Field(description=(
        "(plan success fees + monthly fee pro rata per day) / successes, 2 decimals; "
        "null without a plan or without successes"))
    currency: str | None = Field(description="the plan's currency; null without a plan")


class KpiFigures(Answer):
    conversations: int
    successes: int = Field(description="success events")
    success_rate: float | None = Rate
    appointments: int
    tickets: int
    orders: int
    handoffs: int
    escalation_rate: float | None = Rate
    aht_s: float | None = Field(description="mean duration of answered calls, seconds")
    asa_ms: int | None = Field(description="mean time to the first response, milliseconds")
    abandonment_rate: float | None = Rate
    service_level: float | None = Rate
    resolution_rate: float | None = Rate
    fcr_rate: float | None = Rate
    csat: float | None = Field(description="mean rating 1-5, 2 decimals")
    csat_responses: int
    customers: int = Field(description="distinct customers (exact)")
    conversations_per_customer: float | None
    credits_used: str = Credits
    micro_credits_used: int
    cost_per_success: CostPerSuccess
    dial_efficiency: float | None = Outbound
    conversion_rate: float | None = Outbound
    avg_call_duration_s: float | None = Outbound
    lead_response_time_s: float | None = Outbound
    appointment_rate: float | None = Outbound
    follow_up_rate: float | None = Outbound
    pipeline_velocity_h: float | None = Outbound


class KpiPeriod(KpiFigures):
    period: str = Field(description="the period's first calendar day, YYYY-MM-DD")


class KpiReport(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    granularity: str
    channel: str | None
    direction: str | None
    totals: KpiFigures
    series: list[KpiPeriod]
    dispositions: dict[str, int] = Field(description="conversations per disposition")
    channel_mix: dict[str, int] = Field(description="conversations per channel")


class Compared(Answer):
    current: float | None
    previous: float | None
    change: float | None = Field(description="current - previous, in the KPI's unit")
    change_ratio: float | None = Field(description="change / previous")


class Commentary(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    previous_from: str
    previous_to: str
    figures: dict[str, Compared]
    text: str
    fallback: bool = Field(description="true: the LLM failed; the text is made from the "
                                       "figures by us")
    cached: bool


class TopConversation(Answer):
    id: str
    channel: str
    direction: str
    customer: str
    started_at: str
    ended_at: str | None
    disposition: str | None
    successes: int
    handoff: bool
    rating: int | None
    summary: str | None
    credits: str = Credits
    micro_credits: int


class WeekKpis(Answer):
    totals: KpiFigures
    series: list[KpiPeriod]
    dispositions: dict[str, int]
    channel_mix: dict[str, int]


class WeeklyReport(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    week: str
    from_: str = Field(alias="from")
    to: str
    kpis: WeekKpis
    commentary: Commentary
    top_conversations: list[TopConversation]

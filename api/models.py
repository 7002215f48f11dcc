"""Typed request and response models of the business and admin API (pydantic v2).

Request models are strict (a JSON `true` is not an integer, `1` is not a string) and
name the offending member on failure (`api.requests.parse_body`: 422 `invalid_field`).
Response models are what the handlers return and what `/openapi.json` documents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from metering.agent_configs import TOOL_NAMES
from metering.bounds import MAX_TOPUP_CREDITS

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# Instants as Python writes them (`2026-01-31T12:00:00.123456+00:00`), as the API always has.
Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Credits = Field(pattern=r"^-?[0-9]+\.[0-9]{6}$", examples=["9950.250000"],
                description="exact decimal credits, six decimals")


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is required")
    return value


class Problem(BaseModel):
    """RFC 9457 problem document; clients branch on `code`. More members may follow
    (`field`, `rate_card_field`, `topup_id`, `vendor_code`, ...)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    field: str | None = Field(None, description="the member at fault (422 invalid_field)")


# ---- admin: tenants and numbers -------------------------------------------------------

class CreateTenant(Request):
    name: str = Field(max_length=200)
    rate_card: dict[str, Any] | None = Field(
        None, description="a custom rate card (docs/rate-cards.md); the default card if absent")
    owner_email: str | None = Field(
        None, min_length=3, max_length=254,
        description="the first owner: invited by e-mail (a link valid 24 h) to set a password")

    _name = field_validator("name")(_not_blank)


class TenantCreated(Answer):
    id: str = Field(description="the tenant's id (UUID)")
    name: str
    api_key: str = Field(description="shown once")
    owner_id: str | None = Field(None, description="the invited owner's user id")


class AddNumber(Request):
    phone_number: str = Field(max_length=16, pattern=E164_PATTERN)
    kind: Literal["local", "mobile"]
    whatsapp_phone_number_id: str | None = Field(None, max_length=64)
    operator_number: str | None = Field(None, max_length=16, pattern=E164_PATTERN)


class Number(Answer):
    phone_number: str
    kind: Literal["local", "mobile"]
    whatsapp_phone_number_id: str | None
    operator_number: str | None


class Balance(Answer):
    available_credits: str = Credits
    reserved_credits: str = Credits
    paused: bool = Field(description="below the cheapest billable step of any meter")
    paused_channels: list[str] = Field(description="channels the balance cannot run")
    available_micro_credits: int
    reserved_micro_credits: int


class Tenant(Answer):
    id: str
    name: str
    created_at: Instant
    rate_card: Literal["default", "custom"]
    numbers: list[Number]
    balance: Balance


# ---- tenant: top-ups, balance, usage --------------------------------------------------

class CreateTopup(Request):
    credits: int = Field(ge=1, le=MAX_TOPUP_CREDITS)
    reference: str | None = Field(None, max_length=200)


class TopupAnswer(Answer):
    topup_id: str
    credits: int
    reference: str | None
    balance: Balance


class Topup(Answer):
    topup_id: str
    credits: int
    reference: str | None
    created_at: Instant


class UsageQuery(Request):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: str | None = Field(None, alias="from", description=(
        "ISO date or date-time, inclusive; UTC without an offset (default: 30 days ago)"))
    to: str | None = Field(None, description="ISO date or date-time, exclusive (default: now)")
    group_by: Literal["meter", "day", "channel"] = "meter"


class UsageRow(Answer):
    model_config = ConfigDict(extra="allow")
    meter: str | None = None
    day: str | None = None
    channel: str | None = None
    units: dict[str, int] = Field(description="raw units per meter")
    micro_credits: int
    credits: str = Credits


class UsageReport(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Instant = Field(alias="from")
    to: Instant
    group_by: Literal["meter", "day", "channel"]
    rows: list[UsageRow]


# ---- calls and agents -----------------------------------------------------------------

class Outcome(Answer):
    kind: str
    record_id: str
    occurred_at: Instant


class CallRecord(Answer):
    call_sid: str | None
    session_id: str
    status: str
    disposition: str | None
    number: str | None
    caller: str | None
    started_at: Instant
    ended_at: Instant
    duration_ms: int
    first_audio_ms: int | float | None
    turns: int | list[Any] | None
    usage: dict[str, Any]
    charges_micro_credits: dict[str, Any]
    credits: str = Credits
    micro_credits: int
    written_off_micro_credits: int
    tool_failures: list[Any]
    outcomes: list[Outcome] | None = Field(None, description="only on GET /v1/calls/{call_sid}")


class CallList(Answer):
    calls: list[CallRecord]


class AgentConfigPatch(Request):
    """The members to change; the others keep their current values."""

    model_config = ConfigDict(strict=True, extra="forbid")
    system_prompt: str | None = Field(None, max_length=8000)
    greeting: str | None = Field(None, max_length=500)
    goodbye: str | None = Field(None, max_length=500)
    voice: str | None = Field(None, max_length=64)
    language: str | None = Field(None, max_length=16)
    tools: list[Literal[TOOL_NAMES]] | None = None  # type: ignore[valid-type]
    turn_detection: Literal["silero", "energy"] | None = None
    paused_notice: str | None = Field(None, max_length=500)


class AgentConfig(Answer):
    system_prompt: str
    greeting: str
    goodbye: str
    voice: str
    language: str
    tools: list[str]
    turn_detection: Literal["silero", "energy"]
    paused_notice: str | None


# ---- health ---------------------------------------------------------------------------

class Health(Answer):
    status: Literal["ok"]


class Readiness(Answer):
    status: Literal["ready", "unavailable", "migrating", "draining"]
    checks: dict[str, Literal["ok", "failed"]]
    failed: list[str] | None = None
    errors: dict[str, str] | None = None

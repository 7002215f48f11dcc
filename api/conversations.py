"""Conversations and the tenant settings they follow (docs/conversations.md).

Tenants: `GET /v1/conversations` (a filtered page, newest first),
`GET /v1/conversations/{conversation_id}` (one, with its transcript and tool calls),
`GET /v1/conversations.csv` (every match, streamed as CSV), `GET` / `PATCH /v1/settings`.
Operators: `GET` / `PATCH /admin/tenants/{tenant_id}/settings`.

Filters: `from` and `to` are dates (YYYY-MM-DD) in the tenant's time zone, both
inclusive, at most 400 days apart; `channel`; `disposition`; `has_success`. A bad value
is a 422 naming the parameter; another tenant's conversation is a 404.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zoneinfo
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.admin import TENANT_ID
from api.audit import audit
from api.context import PG_POOL
from api.errors import InvalidField, NotFound
from api.models import Answer, Instant
from api.operations import Reply, add, operation, respond
from api.requests import admin_tenant, json_object, parse_query, require_tenant
from metering.conversations import queries
from metering.conversations.settings import (
    InvalidSetting,
    TenantSettings,
    settings_of,
    update_settings,
)

MAX_RANGE_DAYS = 400
MIN_DAY, MAX_DAY = dt.date(2000, 1, 1), dt.date(2099, 12, 31)  # as the KPIs'
CONVERSATION_ID = {"conversation_id": {"type": "string", "format": "uuid"}}


# ---- models ---------------------------------------------------------------------------

class ConversationQuery(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: dt.date | None = Field(None, alias="from", description=(
        "first day (YYYY-MM-DD, the tenant's time zone), inclusive"))
    to: dt.date | None = Field(None, description="last day (YYYY-MM-DD), inclusive")
    channel: Literal["phone", "whatsapp", "sms", "web"] | None = None
    disposition: str | None = Field(None, min_length=1, max_length=40,
                                    pattern=r"^[a-z_]+$")
    has_success: bool | None = Field(None, description="only conversations with (true) or "
                                     "without (false) a success")
    cursor: str | None = Field(None, max_length=512,
                               description="`next_cursor` of the previous page")
    limit: int = Field(50, ge=1, le=100)


class Customer(Answer):
    masked: str = Field(description="the number with its middle hidden")
    hash: str = Field(description="stable per tenant: the same customer on every channel")


class Turn(Answer):
    role: Literal["agent", "customer"]
    text: str
    started_at: Instant
    ended_at: Instant
    interrupted: bool
    heard_text: str | None = Field(description="what the caller heard of an interrupted "
                                   "agent turn (phone); null otherwise")


class ToolCall(Answer):
    name: str
    arguments: Any
    result: Any
    at: Instant


class Outcome(Answer):
    kind: str
    record_id: str
    at: Instant


class ConversationSummary(Answer):
    id: str
    channel: Literal["phone", "whatsapp", "sms", "web"]
    direction: Literal["inbound", "outbound"]
    customer: Customer
    started_at: Instant
    ended_at: Instant | None = Field(description="null while the conversation is open")
    first_response_ms: int | None
    disposition: str | None
    outcomes: list[Outcome]
    successes: int
    handoff: bool
    resolved: bool = Field(description="the agent's end_call(resolved=true)")
    credits: str
    micro_credits: int
    summary: str | None
    rating: int | None = Field(description="the customer's 1-5 rating (CSAT), if given")


class Conversation(ConversationSummary):
    transcript: list[Turn] | None = Field(
        description="null once deleted after transcript_retention_days")
    tool_calls: list[ToolCall] | None
    transcript_purged_at: Instant | None


class ConversationList(Answer):
    conversations: list[ConversationSummary]
    next_cursor: str | None


class Settings(Answer):
    timezone: str = Field(description="IANA time zone: KPI periods and date filters")
    conversation_idle_minutes: int
    transcript_retention_days: int
    mask_transcripts: bool
    csat_enabled: bool
    service_level_s: int
    report_emails: list[str]


class SettingsPatch(BaseModel):
    """Only the settings given change (types and bounds are checked by metering)."""

    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(None, max_length=64, examples=["Europe/Berlin"])
    conversation_idle_minutes: int | None = Field(None, ge=1, le=1440)
    transcript_retention_days: int | None = Field(None, ge=1, le=3650)
    mask_transcripts: bool | None = None
    csat_enabled: bool | None = None
    service_level_s: int | None = Field(None, ge=1, le=3600)
    report_emails: list[str] | None = Field(None, max_length=20)


# ---- filters --------------------------------------------------------------------------

async def _filters(request: web.Request, tenant_id: uuid.UUID
                   ) -> tuple[queries.Filters, ConversationQuery]:
    query = parse_query(request, ConversationQuery)
    for name, day in (("from", query.from_), ("to", query.to)):
        if day is not None and not MIN_DAY <= day <= MAX_DAY:
            raise InvalidField(name, f"must be a date from {MIN_DAY} to {MAX_DAY}")
    since = until = None
    if query.from_ is not None or query.to is not None:
        settings = await settings_of(request.app[PG_POOL], tenant_id) or TenantSettings()
        zone = zoneinfo.ZoneInfo(settings.timezone)
        if query.from_ is not None and query.to is not None:
            if query.from_ > query.to:
                raise InvalidField("from", "must not be after to")
            if (query.to - query.from_).days >= MAX_RANGE_DAYS:
                raise InvalidField("to", f"the range may span at most {MAX_RANGE_DAYS} days")
        if query.from_ is not None:
            since = dt.datetime.combine(query.from_, dt.time(), zone)
        if query.to is not None:
            until = dt.datetime.combine(query.to + dt.timedelta(days=1), dt.time(), zone)
    if query.cursor is not None:
        try:
            queries.decode_cursor(query.cursor)
        except queries.BadCursor as exc:
            raise InvalidField("cursor", str(exc)) from exc
    return queries.Filters(since, until, query.channel, query.disposition,
                           query.has_success), query


# ---- routes ---------------------------------------------------------------------------

@operation("GET", "/v1/conversations", "Your conversations, newest first, filtered",
           "conversations", security="tenant", query=ConversationQuery,
           responses={200: Reply("a page of conversations (no transcripts)", ConversationList)},
           errors={422: ("invalid_field",)})
async def list_conversations(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    filters, query = await _filters(request, tenant_id)
    items, next_cursor = await queries.list_conversations(
        request.app[PG_POOL], tenant_id, filters, cursor=query.cursor, limit=query.limit)
    return respond(ConversationList(conversations=[ConversationSummary(**i) for i in items],
                                    next_cursor=next_cursor))


@operation("GET", "/v1/conversations.csv", "Your conversations as CSV (same filters)",
           "conversations", security="tenant", query=ConversationQuery,
           responses={200: Reply("one row per conversation, newest first, streamed",
                                 media="text/csv", schema={"type": "string"})},
           errors={422: ("invalid_field",)},
           description="`cursor` and `limit` are ignored: every matching conversation is "
                       "written. Cells that a spreadsheet would run as a formula (starting "
                       "with =, +, -, @) are prefixed with a single quote.")
async def export_conversations(request: web.Request) -> web.StreamResponse:
    tenant_id = await require_tenant(request)
    filters, _ = await _filters(request, tenant_id)
    rows = queries.csv_rows(request.app[PG_POOL], tenant_id, filters)
    # The first batch is read before the answer starts: a store that is down is a 503,
    # not a cut-off file.
    first = await anext(rows, None)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="conversations.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(queries.CSV_HEADER)
    if first is not None:
        writer.writerow([_cell(value) for value in first])
    async for row in rows:
        writer.writerow([_cell(value) for value in row])
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@operation("GET", "/v1/conversations/{conversation_id}",
           "One conversation: transcript, tool calls, summary, outcomes, credits",
           "conversations", security="tenant", path_params=CONVERSATION_ID,
           responses={200: Reply("the conversation", Conversation)},
           errors={404: ("not_found",)})
async def get_conversation(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    try:
        conversation_id = uuid.UUID(request.match_info["conversation_id"])
    except ValueError as exc:
        raise NotFound("no such conversation") from exc
    found = await queries.get_conversation(request.app[PG_POOL], tenant_id, conversation_id)
    if found is None:
        raise NotFound("no such conversation")
    return respond(Conversation(**found))


async def _patch(request: web.Request, tenant_id: uuid.UUID) -> web.Response:
    body = await json_object(request)
    for name in body:
        if name not in SettingsPatch.model_fields:
            raise InvalidField(name, "is not a setting")
    try:
        changed = await update_settings(request.app[PG_POOL], tenant_id, body)
    except InvalidSetting as exc:
        raise InvalidField(exc.setting, exc.detail) from exc
    if changed is None:
        raise NotFound("no such tenant")
    await audit(request, "settings.changed", target=str(tenant_id), changes=body,
                tenant_id=tenant_id)
    return respond(Settings(**changed.to_json()))


async def _get(request: web.Request, tenant_id: uuid.UUID) -> web.Response:
    found = await settings_of(request.app[PG_POOL], tenant_id)
    if found is None:
        raise NotFound("no such tenant")
    return respond(Settings(**found.to_json()))


@operation("GET", "/v1/settings", "Your conversation and KPI settings", "conversations",
           security="tenant", responses={200: Reply("the settings", Settings)})
async def get_settings(request: web.Request) -> web.Response:
    return await _get(request, await require_tenant(request))


@operation("PATCH", "/v1/settings", "Change some of your settings (the others are kept)",
           "conversations", security="tenant", body=SettingsPatch,
           responses={200: Reply("every setting after the change", Settings)},
           errors={422: ("invalid_field",)})
async def patch_settings(request: web.Request) -> web.Response:
    return await _patch(request, await require_tenant(request))


@operation("GET", "/admin/tenants/{tenant_id}/settings", "A tenant's settings", "admin",
           security="admin", path_params=TENANT_ID,
           responses={200: Reply("the settings", Settings)})
async def admin_get_settings(request: web.Request) -> web.Response:
    return await _get(request, await admin_tenant(request))


@operation("PATCH", "/admin/tenants/{tenant_id}/settings",
           "Change some of a tenant's settings (the others are kept)", "admin",
           security="admin", path_params=TENANT_ID, body=SettingsPatch,
           responses={200: Reply("every setting after the change", Settings)},
           errors={422: ("invalid_field",)})
async def admin_patch_settings(request: web.Request) -> web.Response:
    return await _patch(request, await admin_tenant(request))


def add_routes(app: web.Application) -> None:
    add(app, list_conversations, export_conversations, get_conversation, get_settings,
        patch_settings, admin_get_settings, admin_patch_settings)

"""Call records and agent configuration.

Tenants: `GET /v1/calls` (the latest call records, newest first) and
`GET /v1/calls/{call_sid}` (one record with its usage, charges and the outcomes its tools
recorded); each record lists the tool calls whose record could not be saved
(`tool_failures`). Operators: `GET` / `PUT /admin/tenants/{id}/agent` (what the agent says and
may do; a PUT merges the fields given over the current configuration).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp import web

from api.admin import TENANT_ID
from api.audit import audit
from api.context import PG_POOL
from api.errors import NotFound
from api.models import AgentConfig, AgentConfigPatch, CallList, CallRecord, Outcome
from api.operations import Reply, add, operation, respond
from api.requests import admin_tenant, parse_body, require_tenant
from metering.agent_configs import agent_config_for, parse_agent_config, save_agent_config
from metering.money import format_credits
from metering.outcomes import outcomes_of_session

MAX_LIST = 100


def _record(row: asyncpg.Record) -> CallRecord:
    return CallRecord(**_record_json(row))


def _record_json(row: asyncpg.Record) -> dict[str, Any]:
    details = orjson.loads(row["details"]) if isinstance(row["details"], str) else {}
    return {
        "call_sid": details.get("call_sid"),
        "session_id": row["session_id"],
        "status": row["status"],
        "disposition": details.get("disposition"),
        "number": details.get("number"),
        "caller": details.get("caller"),
        "started_at": row["started_at"].isoformat(),
        "ended_at": row["ended_at"].isoformat(),
        "duration_ms": int((row["ended_at"] - row["started_at"]).total_seconds() * 1000),
        "first_audio_ms": details.get("first_audio_ms"),
        "turns": details.get("turns"),
        "usage": orjson.loads(row["usage"]) if isinstance(row["usage"], str) else {},
        "charges_micro_credits": details.get("charges", {}),
        "credits": format_credits(row["micro_credits"]),
        "micro_credits": row["micro_credits"],
        "written_off_micro_credits": row["written_off"],
        "tool_failures": details.get("tool_failures", []),
    }


_COLUMNS = "session_id, status, started_at, ended_at, usage::text, micro_credits, " \
           "written_off, details::text"


@operation("GET", "/v1/calls", "Your latest call records, newest first (at most 100)",
           "calls", security="tenant", responses={200: Reply("the records", CallList)})
async def list_calls(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    rows = await request.app[PG_POOL].fetch(
        f"SELECT {_COLUMNS} FROM sessions WHERE tenant_id = $1 AND channel = 'phone' "  # noqa: S608
        "ORDER BY started_at DESC LIMIT $2", tenant_id, MAX_LIST)
    return respond(CallList(calls=[_record(row) for row in rows]), exclude_unset=True)


@operation("GET", "/v1/calls/{call_sid}",
           "One call record: disposition, timings, usage, charges, outcomes, tool failures",
           "calls", security="tenant",
           path_params={"call_sid": {"type": "string", "maxLength": 64}},
           responses={200: Reply("the record (once the call settled)", CallRecord)})
async def get_call(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    call_sid = request.match_info["call_sid"]
    if not call_sid.isalnum() or len(call_sid) > 64:
        raise NotFound("no such call")
    pool = request.app[PG_POOL]
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM sessions WHERE session_id = $1 AND tenant_id = $2",  # noqa: S608
        f"call_{call_sid}", tenant_id)
    if row is None:
        raise NotFound("no such call (records appear once the call settled)")
    record = _record(row)
    record.outcomes = [Outcome(kind=o["kind"], record_id=str(o["record_id"]),
                               occurred_at=o["occurred_at"].isoformat())
                       for o in await outcomes_of_session(pool, row["session_id"])]
    return respond(record)


@operation("GET", "/admin/tenants/{tenant_id}/agent", "The tenant's agent configuration",
           "admin", security="admin", path_params=TENANT_ID,
           responses={200: Reply("the configuration", AgentConfig)})
async def get_agent(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    return respond(AgentConfig(**(await agent_config_for(pool, tenant_id)).to_json()))


@operation("PUT", "/admin/tenants/{tenant_id}/agent",
           "Change members of the agent configuration (the others are kept)", "admin",
           security="admin", path_params=TENANT_ID, body=AgentConfigPatch,
           responses={200: Reply("the whole configuration after the change", AgentConfig)})
async def put_agent(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    body = await parse_body(request, AgentConfigPatch)
    # The model checks types and sizes; metering checks the rest (blank text), and its
    # AgentConfigError is mapped by the middleware (api.errors).
    config = parse_agent_config(body.model_dump(exclude_unset=True),
                                await agent_config_for(pool, tenant_id))
    await save_agent_config(pool, tenant_id, config)
    await audit(request, "agent.changed", target=str(tenant_id), tenant_id=tenant_id,
                changes={"members": sorted(body.model_dump(exclude_unset=True))})
    return respond(AgentConfig(**config.to_json()))


def add_routes(app: web.Application) -> None:
    add(app, list_calls, get_call, get_agent, put_agent)

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

from api.context import PG_POOL
from api.problems import Problem, invalid_field
from api.requests import admin_tenant, json_object, require_tenant
from metering.agent_configs import (
    AgentConfigError,
    agent_config_for,
    parse_agent_config,
    save_agent_config,
)
from metering.money import format_credits
from metering.outcomes import outcomes_of_session

MAX_LIST = 100


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


async def list_calls(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    rows = await request.app[PG_POOL].fetch(
        f"SELECT {_COLUMNS} FROM sessions WHERE tenant_id = $1 AND channel = 'phone' "  # noqa: S608
        "ORDER BY started_at DESC LIMIT $2", tenant_id, MAX_LIST)
    return web.json_response({"calls": [_record_json(row) for row in rows]})


async def get_call(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    call_sid = request.match_info["call_sid"]
    if not call_sid.isalnum() or len(call_sid) > 64:
        raise Problem(404, "not_found", "no such call")
    pool = request.app[PG_POOL]
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM sessions WHERE session_id = $1 AND tenant_id = $2",  # noqa: S608
        f"call_{call_sid}", tenant_id)
    if row is None:
        raise Problem(404, "not_found", "no such call (records appear once the call settled)")
    record = _record_json(row)
    record["outcomes"] = [{"kind": o["kind"], "record_id": str(o["record_id"]),
                           "occurred_at": o["occurred_at"].isoformat()}
                          for o in await outcomes_of_session(pool, row["session_id"])]
    return web.json_response(record)


async def get_agent(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    return web.json_response((await agent_config_for(pool, tenant_id)).to_json())


async def put_agent(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    body = await json_object(request)
    try:
        config = parse_agent_config(body, await agent_config_for(pool, tenant_id))
    except AgentConfigError as exc:
        raise invalid_field(exc.field, str(exc).split(": ", 1)[-1]) from exc
    await save_agent_config(pool, tenant_id, config)
    return web.json_response(config.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/calls", list_calls)
    app.router.add_get("/v1/calls/{call_sid}", get_call)
    app.router.add_get("/admin/tenants/{tenant_id}/agent", get_agent)
    app.router.add_put("/admin/tenants/{tenant_id}/agent", put_agent)

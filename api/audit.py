"""`audit(request, action, ...)`: one audit-log entry for what this request did, with the
caller (user, API key or admin token) and its address filled in (docs/accounts.md).

Call it after the change commits (an entry never describes something that did not
happen); `changes` must hold no secret."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from api.auth import PRINCIPAL, Principal
from api.context import PG_POOL
from metering.accounts.audit import SYSTEM, record


def client_address(request: web.Request) -> str | None:
    return request.remote


async def audit(request: web.Request, action: str, *, target: str | None = None,
                changes: dict[str, Any] | None = None,
                tenant_id: uuid.UUID | None = None,
                principal: Principal | None = None) -> None:
    """Records `action` (`noun.verb`). The tenant is the caller's unless given (an
    operator acting on a tenant names it)."""
    who: Principal | None = principal or request.get(PRINCIPAL)
    actor = SYSTEM if who is None else who.actor
    tenant = tenant_id if tenant_id is not None else (None if who is None else who.tenant_id)
    await record(request.app[PG_POOL], tenant_id=tenant, actor=actor,
                 address=client_address(request), action=action, target=target,
                 changes=changes)

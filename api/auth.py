"""Who is calling, resolved once per request, and whether the route allows them.

`auth_middleware` looks up the route's decision (`api.access`), resolves the caller into
a `Principal` and stores it on the request; handlers ask `api.requests.require_tenant`
or `require_admin`, which only read it. Credentials, in order:

- `Authorization: Bearer <token>`: an API key on tenant routes, the admin token on
  admin routes (scripts and automation);
- the `vgw_session` cookie (`POST /auth/login`): a tenant's user or an operator. Every
  request that is not GET/HEAD/OPTIONS must carry the session's CSRF token in
  `X-CSRF-Token` (403 `csrf_token_required` / `csrf_token_invalid`).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from api.access import ROUTES, Decision, fallback
from api.context import ADMIN_TOKEN, CLOCK, PG_POOL
from api.errors import Forbidden, Unauthorized
from api.keycache import KEY_CACHE
from api.operations import operation_of
from metering.accounts.audit import Actor
from metering.accounts.sessions import csrf_matches, session_user

SESSION_COOKIE = "vgw_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Kind = Literal["user", "api_key", "admin_token"]


@dataclass(frozen=True)
class Principal:
    kind: Kind
    tenant_id: uuid.UUID | None = None
    role: str | None = None       # a user's role
    scope: str | None = None      # an API key's scope
    id: str | None = None         # the user's or the key's id
    label: str | None = None      # the user's e-mail, the key's name
    session_token: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, self.id, self.label)

    @property
    def manages_as(self) -> str | None:
        """The role used for user management: a user's own; a full API key acts as an
        owner (the key a tenant was created with invites its first owner); the operator
        side (None) may do anything."""
        if self.kind == "user":
            return self.role
        return "owner" if self.kind == "api_key" else None


PRINCIPAL = web.RequestKey("principal", Principal)


def decision_for(request: web.Request) -> Decision | None:
    """The route's decision; None when no route matched (404/405 follow)."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or getattr(request.match_info, "http_exception", None) is not None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    found = ROUTES.get((method, resource.canonical))
    if found is not None:
        return found
    op = operation_of(route.handler)
    return fallback(None if op is None else op.security)


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <key>")
    # Keys and the admin token are printable ASCII. Anything else (bytes that are not
    # UTF-8 arrive as surrogates and cannot be encoded) is a wrong key, not a crash.
    if not (token.isascii() and token.isprintable()):
        raise Unauthorized("the credentials are not valid")
    return token


async def _session(request: web.Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    user = await session_user(request.app[PG_POOL], token, request.app[CLOCK]())
    if user is None:
        raise Unauthorized("the session has ended: sign in again", code="session_expired")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if not sent:
            raise Forbidden(f"a signed-in request that changes something must send the "
                            f"{CSRF_HEADER} header /auth/login answered",
                            code="csrf_token_required")
        if not csrf_matches(token, sent):
            raise Forbidden(f"the {CSRF_HEADER} header does not belong to this session",
                            code="csrf_token_invalid")
    return Principal("user", user.tenant_id, role=user.role, id=str(user.user_id),
                     label=user.email, session_token=token)


async def _tenant(request: web.Request, decision: Decision) -> Principal:
    token = bearer(request)
    if token is not None:
        key = await request.app[KEY_CACHE].lookup(request.app, token, request.app[CLOCK]())
        if key is None:
            raise Unauthorized("the API key is not valid")
        if (key.scope != "full" and request.method not in SAFE_METHODS
                and not decision.reads):
            raise Forbidden("this API key may only read: use a key with scope full",
                            code="insufficient_scope")
        return Principal("api_key", key.tenant_id, scope=key.scope, id=str(key.id),
                         label=key.name)
    principal = await _session(request)
    if principal is None:
        raise Unauthorized("send Authorization: Bearer <key>, or sign in")
    if principal.tenant_id is None or not decision.allows(principal.role or ""):
        raise Forbidden(f"the role {principal.role} may not use this", code="role_forbidden")
    return principal


async def _admin(request: web.Request, decision: Decision) -> Principal:
    token = bearer(request)
    if token is not None:
        if not hmac.compare_digest(token.encode(), request.app[ADMIN_TOKEN].encode()):
            raise Unauthorized("the admin token is not valid")
        return Principal("admin_token", label="admin token")
    principal = await _session(request)
    if principal is None:
        raise Unauthorized("send Authorization: Bearer <admin token>, or sign in")
    if principal.tenant_id is not None or not decision.allows(principal.role or ""):
        raise Forbidden(f"the role {principal.role} may not use this", code="role_forbidden")
    return principal


async def authenticate(request: web.Request, decision: Decision) -> Principal | None:
    if decision.area == "public":
        return None
    if decision.area == "tenant":
        return await _tenant(request, decision)
    if decision.area == "admin":
        return await _admin(request, decision)
    principal = await _session(request)
    if principal is None:
        raise Unauthorized("sign in first", code="not_signed_in")
    return principal


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    decision = decision_for(request)
    if decision is not None:
        principal = await authenticate(request, decision)
        if principal is not None:
            request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    if PRINCIPAL not in request:  # a route the table calls public asked for credentials
        raise Unauthorized("send Authorization: Bearer <key>")
    return request[PRINCIPAL]

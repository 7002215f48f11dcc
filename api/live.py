"""`GET /v1/live`: the tenant's balance, live sessions and settled conversations as
server-sent events, and `POST /v1/live/token`, the ticket a browser opens it with.

A browser's EventSource cannot send an Authorization header, and an API key in a URL
ends up in access logs and browser history. So the page trades its key (in a header)
for a stream token: random, single use, valid 60 s, kept in Redis only as its SHA-256.
The token is in the stream's URL; once the stream opened it is spent, so a logged URL
opens nothing. Clients that can send headers (curl) use `Authorization: Bearer <key>`
on `GET /v1/live` directly.

Events (docs/dashboard.md): `balance` (the `GET /v1/balance` document), `sessions`
(`{"sessions": [...]}`, the calls and text exchanges in progress), `conversations`
(`{"settled": [ids]}`, conversations that just settled; read them with
`GET /v1/conversations/{id}`), `bye` (the server is shutting down: reconnect); a comment
line every 15 s on an idle stream.

Every role of the tenant may follow its live sessions and settled conversations; only
those who see the balance (API keys, owners, admins, billing: `api.access.MONEY`) get
`balance` events. The token remembers which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import uuid

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.access import EVERYONE, MONEY
from api.auth import Principal, authenticate, principal_of
from api.context import REDIS, REDIS_PREFIX
from api.errors import Unauthorized, Unavailable
from api.live_hub import _CLOSE, LIVE_HUB, Stream, TooManyStreams, sse
from api.operations import Reply, add, operation, respond
from api.requests import parse_query, require_tenant

TOKEN_TTL_S = 60
TOKEN_PREFIX = "lst_"  # noqa: S105 - a marker that names the kind of token, no secret
_NO_BALANCE = "sessions-only"  # held with the tenant: a stream without balance events


class LiveToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(description="single use, for `GET /v1/live?token=`")
    expires_at: str = Field(description="RFC 3339; the stream must be opened before")
    url: str = Field(description="the stream's path with the token")


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    token: str | None = Field(None, max_length=100, description=(
        "a token from `POST /v1/live/token` (browsers); without it, send the API key as "
        "`Authorization: Bearer`"))


def _token_key(request: web.Request, token: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{request.app[REDIS_PREFIX]}live-token:{digest}"


@operation("POST", "/v1/live/token", "A single-use token to open the live stream with",
           "tenant", security="tenant",
           responses={201: Reply("the token, valid 60 s, spent when the stream opens",
                                 LiveToken)},
           description="For browsers: EventSource cannot send the API key in a header, "
                       "and the key never goes into a URL.")
async def create_live_token(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    held = str(tenant_id)
    if not sees_balance(principal_of(request)):
        held += " " + _NO_BALANCE
    await request.app[REDIS].set(_token_key(request, token), held, ex=TOKEN_TTL_S)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TOKEN_TTL_S)
    return respond(LiveToken(token=token, expires_at=expires.isoformat(),
                             url=f"/v1/live?token={token}"), status=201)


def sees_balance(principal: Principal) -> bool:
    """API keys (any scope may read the balance) and the roles of MONEY routes."""
    return principal.kind == "api_key" or MONEY.allows(principal.role or "")


async def _stream_tenant(request: web.Request) -> tuple[uuid.UUID, bool]:
    """The stream's tenant and whether it carries the balance: the token's, or the
    caller's as on any tenant route (an API key, or a signed-in user of any role).
    `api.access` lists the route as public because the token in the query is a
    credential the middleware does not know."""
    query = parse_query(request, LiveQuery)
    if query.token is None:
        principal = await authenticate(request, EVERYONE)
        if principal is None or principal.tenant_id is None:
            raise Unauthorized("send Authorization: Bearer <key>, or a stream token")
        return principal.tenant_id, sees_balance(principal)
    raw = await request.app[REDIS].getdel(_token_key(request, query.token))
    if raw is None:
        raise Unauthorized("the stream token is unknown, expired or already used: "
                           "ask POST /v1/live/token for another", code="invalid_stream_token")
    tenant, _, limit = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition(" ")
    return uuid.UUID(tenant), limit != _NO_BALANCE


@operation("GET", "/v1/live", "Balance, live sessions and settled conversations as they "
           "change (server-sent events)", "tenant", security="tenant", query=LiveQuery,
           responses={200: Reply("an endless text/event-stream", media="text/event-stream",
                                 schema={"type": "string"})},
           errors={401: ("unauthorized", "invalid_stream_token"),
                   503: ("live_streams_full",)},
           description="Events: `balance`, `sessions`, `conversations` (`{\"settled\": "
                       "[ids]}`), `bye`; a comment line every 15 s. Authenticate with the "
                       "API key in the header, or with `?token=` from `POST "
                       "/v1/live/token` (browsers). docs/dashboard.md.")
async def live_stream(request: web.Request) -> web.StreamResponse:
    tenant_id, balance = await _stream_tenant(request)
    tenant = str(tenant_id)
    hub = request.app[LIVE_HUB]
    try:
        stream = hub.open(tenant, request, balance=balance)
    except TooManyStreams as exc:
        raise Unavailable(str(exc), code="live_streams_full") from exc
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})  # nginx: pass each event on at once
    try:
        first = await hub.snapshot(tenant)  # a store away: 503 before the stream starts
        await response.prepare(request)
        try:
            await response.write(b"retry: 3000\n\n" + b"".join(stream.visible(first)))
            await _pump(response, stream, hub.heartbeat_s)
        except ConnectionError:  # the client went away mid-write: nothing more to say
            pass
    finally:
        hub.close(stream)
    return response


async def _pump(response: web.StreamResponse, stream: Stream, heartbeat_s: float) -> None:
    """Writes the stream's events until it ends (shutdown, client gone or too slow)."""
    while True:
        try:
            chunk = await asyncio.wait_for(stream.queue.get(), heartbeat_s)
        except TimeoutError:
            chunk = b": keep-alive\n\n"
        if chunk == _CLOSE:
            transport = stream.request.transport if stream.request else None
            if transport is not None and not transport.is_closing():
                await response.write(sse("bye", {"reconnect": True}))
                await response.write_eof()
            return
        await response.write(chunk)


def add_routes(app: web.Application) -> None:
    add(app, create_live_token, live_stream)

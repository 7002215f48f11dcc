"""Reading requests strictly: authentication and JSON bodies, failing with precise problems."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.auth import principal_of
from api.context import PG_POOL
from api.errors import (
    BadRequest,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from api.problems import Problem
from metering.tenants import get_tenant

MAX_JSON_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)


def require_admin(request: web.Request) -> None:
    """The caller is the admin token or an operator the route allows (`api.auth` decided
    before the handler ran; this only reads its answer)."""
    if principal_of(request).tenant_id is not None:
        raise Unauthorized("the admin token is not valid")


async def admin_tenant(request: web.Request) -> uuid.UUID:
    """An operator's request about the tenant in the path: admin token checked, the
    tenant known (404 otherwise)."""
    require_admin(request)
    tenant_id = path_uuid(request, "tenant_id")
    if await get_tenant(request.app[PG_POOL], tenant_id) is None:
        raise NotFound("no such tenant")
    return tenant_id


async def require_tenant(request: web.Request) -> uuid.UUID:
    """The caller's tenant: its API key's, or its signed-in user's (`api.auth` resolved
    and authorized the caller before the handler ran)."""
    tenant_id = principal_of(request).tenant_id
    if tenant_id is None:
        raise Unauthorized("the API key is not valid")
    return tenant_id


async def json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(MAX_JSON_BYTES)
    raw = await read_capped(request, MAX_JSON_BYTES)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(MAX_JSON_BYTES)
    try:
        # The standard parser, not orjson: an absurdly large integer must reach the field
        # check (422 naming the field), not fail as malformed JSON.
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(body, dict):
        raise Problem(422, "invalid_body", "the body must be a JSON object")
    return body


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The body, or its first `limit + 1` bytes when it is longer. One `read(n)` may
    return only the chunk that has arrived so far, so read until the end or the cap."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def form_fields(request: web.Request, limit: int) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body of at most `limit` bytes, as the
    webhooks' senders post it: 415 for another media type (a multipart body, with or
    without its boundary), 413 when longer, 400 when it is not a UTF-8 form."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "send the fields form-encoded (application/x-www-form-urlencoded)")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    raw = await read_capped(request, limit)
    if len(raw) > limit:
        raise PayloadTooLarge(limit)
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the body is not a form: {exc}", code="malformed_payload") from exc


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON object body as `model`: 400/413/422 as `json_object`, then a 422
    `invalid_field` naming the first member the model refuses."""
    return validated(model, await json_object(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model` (the first value of each name)."""
    return validated(model, {name: request.query.get(name) for name in request.query})


def validated(model: type[M], values: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise field_error(exc) from exc


def field_error(exc: ValidationError) -> InvalidField:
    """The first error of a validation, as the 422 the API has always answered: `field`
    is the top-level member (`tools`, not `tools.2`), the detail says what is wrong."""
    first = exc.errors(include_url=False)[0]
    loc = first["loc"]
    field = str(loc[0]) if loc else "body"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    elif len(loc) > 1:
        message = f"{'.'.join(str(part) for part in loc[1:])}: {message}"
    return InvalidField(field, message)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound(f"no such {name.removesuffix('_id')}") from exc

"""The OpenAPI 3.1 document, generated from the router and the operations' models, served
at `/openapi.json`; a human page at `/docs` (Swagger UI, vendored under api/static).

Nothing here is written by hand per route: each route's `@operation` (api.operations) says
what it takes and answers. Hidden operations (dev only) are left out of the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, TypeAlias

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.models import Problem as ProblemSchema
from api.operations import JSON, Operation, Reply, add, operation, operation_of

PROBLEM_MEDIA = "application/problem+json"
_REF = "#/components/schemas/{model}"
Key: TypeAlias = tuple[type[BaseModel], JsonSchemaMode]
Refs: TypeAlias = Mapping[Any, Mapping[str, Any]]
_STATIC = resources.files("api") / "static"
_SECURITY_SCHEMES = {
    "admin": {"type": "http", "scheme": "bearer",
              "description": "the operator's admin token (VOICEGW_ADMIN_TOKEN)"},
    "tenant": {"type": "http", "scheme": "bearer",
               "description": "a tenant's API key (shown once when the tenant is created)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "vgw_session",
                "description": "a signed-in user's session (POST /auth/login); every request "
                               "that is not GET also sends X-CSRF-Token"},
    "twilio": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
               "description": "Twilio's request signature over the URL and the form"},
    "whatsapp": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256",
                 "description": "Meta's HMAC-SHA256 of the raw body with the app secret"},
}
_STATUS_TEXT = {400: "malformed request", 401: "missing or wrong credentials",
                403: "refused", 404: "no such resource (another tenant's looks the same)",
                409: "conflict with what is stored", 413: "body too large",
                415: "unsupported media type", 422: "a member is invalid (named in `field`)",
                429: "too many attempts (see Retry-After)",
                502: "a vendor refused or failed",
                503: "unavailable now; retry (see Retry-After)"}


def operations(app: web.Application) -> list[tuple[web.AbstractRoute, Operation | None]]:
    """Every route of the app with its description (None: undescribed, a bug). HEAD
    routes that aiohttp adds beside each GET are the GET's."""
    return [(route, operation_of(route.handler)) for route in app.router.routes()
            if route.method != "HEAD"]


def _errors(op: Operation) -> dict[int, tuple[str, ...]]:
    """The operation's error codes plus those every operation of its kind can answer."""
    found: dict[int, list[str]] = {status: list(codes) for status, codes in op.errors.items()}

    def more(status: int, *codes: str) -> None:
        listed = found.setdefault(status, [])
        listed.extend(code for code in codes if code not in listed)

    if op.security in ("admin", "tenant"):
        more(401, "unauthorized", "session_expired")
        more(403, "role_forbidden", "csrf_token_required", "csrf_token_invalid")
    if op.security == "tenant" and op.method != "GET":
        more(403, "insufficient_scope")
    if op.body is not None:
        more(413, "payload_too_large")
        if op.body_media == JSON:
            more(400, "malformed_json")
            more(422, "invalid_body", "invalid_field")
        else:
            more(400, "malformed_payload")
            more(415, "unsupported_media_type")
    if op.query is not None:
        more(422, "invalid_field")
    if op.path_names:
        more(404, "not_found")
    if op.tag != "health":
        more(503, "store_unavailable")
    return {status: tuple(codes) for status, codes in sorted(found.items())}


def _models(ops: list[Operation]) -> list[Key]:
    wanted: dict[Key, None] = {(ProblemSchema, "serialization"): None}
    for op in ops:
        for model in (op.body, op.query):
            if model is not None:
                wanted[(model, "validation")] = None
        for reply in op.responses.values():
            if reply.model is not None:
                wanted[(reply.model, "serialization")] = None
    return list(wanted)


def _content(media: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {media: {"schema": dict(schema)}}


def _operation_doc(op: Operation, refs: Refs, defs: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": [op.tag],
                           "operationId": f"{op.method.lower()}{_camel(op.openapi_path)}"}
    if op.description:
        doc["description"] = op.description
    doc["security"] = [{op.security: []}] if op.security else []
    if op.security in ("admin", "tenant"):  # people sign in; scripts use the bearer token
        doc["security"].append({"session": []})
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": dict(op.path_params.get(name, {"type": "string"}))}
        for name in op.path_names]
    if op.query is not None:
        params.extend(_query_params(refs[(op.query, "validation")], defs))
    params.extend({"name": h.name, "in": "header", "required": h.required,
                   "description": h.description, "schema": dict(h.schema)} for h in op.headers)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {"required": True,
                              "content": _content(op.body_media, refs[(op.body, "validation")])}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        responses[str(status)] = _reply(reply, refs)
    problem = refs[(ProblemSchema, "serialization")]
    for status, codes in _errors(op).items():
        if str(status) in responses:
            continue
        responses[str(status)] = {
            "description": f"{_STATUS_TEXT.get(status, 'error')}: "
                           + ", ".join(f"`{code}`" for code in codes),
            "content": _content(PROBLEM_MEDIA, problem)}
    doc["responses"] = responses
    return doc


def _reply(reply: Reply, refs: Refs) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.model is not None:
        answer["content"] = _content(reply.media, refs[(reply.model, "serialization")])
    elif reply.schema is not None:
        answer["content"] = _content(reply.media, reply.schema)
    return answer


def _query_params(ref: Mapping[str, Any], defs: Mapping[str, Any]) -> list[dict[str, Any]]:
    schema = defs[str(ref["$ref"]).rsplit("/", 1)[-1]]
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)  # a query string has no null: absent is the default
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _not_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    found = dict(schema)
    choices = [c for c in found.pop("anyOf", ()) if c != {"type": "null"}]
    if len(choices) == 1:
        found.update(choices[0])
    elif choices:
        found["anyOf"] = choices
    if found.get("default", "") is None:
        del found["default"]
    return found


def _camel(path: str) -> str:
    words = [w for w in path.replace("{", "/").replace("}", "").replace(".", "/")
             .replace("-", "/").replace("_", "/").split("/") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Root"


def build_document(app: web.Application) -> dict[str, Any]:
    ops = [op for _, op in operations(app) if op is not None and not op.hidden]
    refs, top = models_json_schema(_models(ops), ref_template=_REF)
    defs = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation_doc(op, refs, defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "voicegw API", "version": "1",
                 "description": "Business, admin, health and webhook endpoints of the "
                                "gateway. Errors are RFC 9457 problem documents whose `code` "
                                "is stable (docs/api.md)."},
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": _SECURITY_SCHEMES},
    }


@operation("GET", "/openapi.json", "This document (OpenAPI 3.1)", "docs",
           responses={200: Reply("the OpenAPI document", schema={"type": "object"})})
async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app))


_HTML = Reply("an HTML page", media="text/html", schema={"type": "string"})
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
           "init.js": "text/javascript"}


@operation("GET", "/docs", "The API reference page (Swagger UI reading /openapi.json)",
           "docs", responses={200: _HTML})
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=(_STATIC / "docs.html").read_text(encoding="utf-8"),
                        content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; "
                                 "img-src 'self' data:; style-src 'self' 'unsafe-inline'"})


@operation("GET", "/docs/{asset}", "A file of the vendored Swagger UI", "docs",
           responses={200: Reply("the file", media="text/javascript",
                                 schema={"type": "string"})},
           path_params={"asset": {"enum": sorted(_ASSETS)}}, hidden=True)
async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in _ASSETS:
        raise web.HTTPNotFound(text="no such file")
    return web.Response(body=(_STATIC / "swagger-ui" / name).read_bytes(),
                        content_type=_ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


def add_routes(app: web.Application) -> None:
    add(app, openapi_handler, docs_page, docs_asset)

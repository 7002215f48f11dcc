"""Routes that cannot exist without their description.

Every handler is declared with `@operation(...)`: method, path, summary, security, the
request model (JSON or form), query and path parameters, every response with its model
and every error status with its problem codes. `add(app, handler)` mounts it, and
`api.openapi` builds the OpenAPI 3.1 document by walking `app.router`: a route whose
handler has no operation fails `tests/api/test_openapi.py` (and so the build).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
Security = Literal["admin", "tenant", "twilio", "whatsapp"]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_ATTRIBUTE = "__voicegw_operation__"
_PATH_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")


@dataclass(frozen=True)
class Reply:
    """One documented answer: a model (JSON), or another media type with a schema."""

    description: str
    model: type[BaseModel] | None = None
    media: str = JSON
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    required: bool = True
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    responses: Mapping[int, Reply]
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    security: Security | None = None
    body: type[BaseModel] | None = None
    body_media: str = JSON
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    # Routes outside the public contract (the dev-only mail page): described, not published.
    hidden: bool = False

    @property
    def path_names(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)


def operation(method: str, path: str, summary: str, tag: str, *,
              responses: Mapping[int, Reply], **more: Any) -> Callable[[H], H]:
    """Attaches the description of the route `handler` serves."""
    described = Operation(method.upper(), path, summary, tag, responses, **more)

    def attach(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, described)
        return handler

    return attach


def operation_of(handler: object) -> Operation | None:
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def add(app: web.Application, *handlers: Handler) -> None:
    """Mounts each described handler at its method and path (GET also answers HEAD)."""
    for handler in handlers:
        op = operation_of(handler)
        if op is None:
            raise TypeError(f"{handler!r} has no @operation: describe it before mounting it")
        if op.method == "GET":
            app.router.add_get(op.path, handler)
        else:
            app.router.add_route(op.method, op.path, handler)


def respond(model: BaseModel, status: int = 200, *, exclude_unset: bool = False
            ) -> web.Response:
    """A response model as JSON (members by alias: `from`, not `from_`)."""
    return web.Response(body=model.model_dump_json(by_alias=True, exclude_unset=exclude_unset),
                        status=status, content_type=JSON)

"""The one place where failures become HTTP: problem documents with stable codes.

Handlers raise (`api.errors`, or a metering domain error mapped by `domain_problem`);
nothing else translates exceptions into answers."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from api.errors import domain_problem
from api.outages import is_store_outage, store_unavailable
from api.problems import Problem, problem_response

log = logging.getLogger("voicegw.http")

# aiohttp's own HTTP errors (404 no route, 405, 413 body too large) mapped to our codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
# Headers of aiohttp's own errors that describe the body it would have sent; every other
# one (Allow on a 405, WWW-Authenticate, Retry-After) is part of the answer and is kept.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem, request.path)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        if request.headers.get("Upgrade", "").lower() == "websocket" and exc.status < 500:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        headers = {name: value for name, value in exc.headers.items()
                   if name.lower() not in _BODY_HEADERS}
        return problem_response(Problem(exc.status, code, detail, headers=headers),
                                request.path)
    except Exception as exc:
        mapped = domain_problem(exc)
        if mapped is not None:  # a metering domain error: mapped here, nowhere else
            return problem_response(mapped, request.path)
        if is_store_outage(exc):
            log.warning("store unavailable on %s %s: %r", request.method, request.path, exc)
            return problem_response(store_unavailable(), request.path)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, "internal_error", "the gateway hit an unexpected error"), request.path
        )

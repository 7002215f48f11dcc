"""The one place where failures become HTTP: problem documents with stable codes."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

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
        return problem_response(Problem(exc.status, code, detail), request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, "internal_error", "the gateway hit an unexpected error"), request.path
        )

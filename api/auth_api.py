"""Signing in (docs/accounts.md): `POST /auth/login` sets the session cookie and answers
the CSRF token; `/auth/session`, `/auth/logout`; a password set from an invite or reset
link (`/auth/password`) and a reset link asked for by e-mail (`/auth/password-reset`).

No password, token or cookie value is ever logged or answered again."""

from __future__ import annotations

import datetime as dt
import logging

from aiohttp import web

from api.accounts_models import (
    Login,
    PasswordSet,
    ResetQueued,
    ResetRequest,
    SessionAnswer,
    SessionUser,
    SetPassword,
)
from api.audit import audit, client_address
from api.auth import PRINCIPAL, SESSION_COOKIE, Principal, principal_of
from api.context import CLOCK, PG_POOL, PUBLIC_URL, SECURE_COOKIES
from api.errors import Unauthorized
from api.operations import Reply, add, operation, respond
from api.ratelimit import check_account, check_address, failed, succeeded
from api.requests import parse_body
from metering.accounts import sessions, users

log = logging.getLogger("voicegw.auth")
COOKIE_NOTE = ("The `vgw_session` cookie is HttpOnly, SameSite=Strict and Secure "
               "(except under `voicegw dev`).")


def _answer(principal: Principal, expires_at: dt.datetime) -> SessionAnswer:
    assert principal.session_token is not None
    return SessionAnswer(
        user=SessionUser(id=principal.id or "", email=principal.label or "",
                         role=principal.role or "",
                         tenant_id=None if principal.tenant_id is None
                         else str(principal.tenant_id)),
        csrf_token=sessions.csrf_token(principal.session_token),
        expires_at=expires_at.isoformat())


@operation("POST", "/auth/login", "Sign in: sets the session cookie, answers the CSRF token",
           "accounts", body=Login,
           responses={200: Reply("signed in", SessionAnswer)},
           errors={401: ("invalid_credentials",), 429: ("too_many_attempts",)},
           description=f"{COOKIE_NOTE} A wrong e-mail or password is the same 401. At most "
                       "20 attempts a minute from one address, and 5 wrong passwords per "
                       "account in 15 minutes: then 429 with Retry-After.")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Login)
    await check_address(request)
    await check_account(request, body.email)
    user = await users.authenticate(request.app[PG_POOL], body.email, body.password)
    if user is None:
        await failed(request, body.email)
        raise Unauthorized("the e-mail or the password is wrong", code="invalid_credentials")
    await succeeded(request, body.email)
    token, expires = await sessions.create_session(
        request.app[PG_POOL], user.id, client_address(request), request.app[CLOCK]())
    principal = Principal("user", user.tenant_id, role=user.role, id=str(user.id),
                          label=user.email, session_token=token)
    await audit(request, "session.created", target=str(user.id), principal=principal)
    response = respond(_answer(principal, expires))
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True,
                        secure=request.app[SECURE_COOKIES], samesite="Strict",
                        max_age=int(sessions.SESSION_TTL.total_seconds()))
    response.headers["Cache-Control"] = "no-store"
    return response


@operation("GET", "/auth/session", "Who is signed in, and the session's CSRF token",
           "accounts", responses={200: Reply("the session", SessionAnswer)},
           errors={401: ("not_signed_in", "session_expired")})
async def get_session(request: web.Request) -> web.Response:
    principal = principal_of(request)
    user = await sessions.session_user(request.app[PG_POOL], principal.session_token or "",
                                       request.app[CLOCK]())
    if user is None:  # ended between the check and now
        raise Unauthorized("the session has ended: sign in again", code="session_expired")
    response = respond(_answer(principal, user.expires_at))
    response.headers["Cache-Control"] = "no-store"
    return response


@operation("POST", "/auth/logout", "Sign out: the session ends in every gateway at once",
           "accounts", responses={204: Reply("signed out", media="", schema=None)},
           errors={401: ("not_signed_in", "session_expired"),
                   403: ("csrf_token_required", "csrf_token_invalid")})
async def logout(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    await sessions.end_session(request.app[PG_POOL], principal.session_token or "")
    await audit(request, "session.ended", target=principal.id)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@operation("POST", "/auth/password", "Set a password with an invite or reset link's token",
           "accounts", body=SetPassword, responses={200: Reply("the password is set",
                                                                PasswordSet)},
           errors={400: ("link_invalid",), 410: ("link_expired", "link_used"),
                   429: ("too_many_attempts",)},
           description="A link works once, for 24 hours. Every session of the user ends. "
                       "Passwords are 10-256 characters (422 naming `password`).")
async def set_password(request: web.Request) -> web.Response:
    body = await parse_body(request, SetPassword)
    await check_address(request, "password")
    user = await users.set_password(request.app[PG_POOL], token=body.token,
                                    password=body.password, now=request.app[CLOCK]())
    principal = Principal("user", user.tenant_id, role=user.role, id=str(user.id),
                          label=user.email)
    await audit(request, "user.password_set", target=str(user.id), principal=principal)
    return respond(PasswordSet(email=user.email, role=user.role))


@operation("POST", "/auth/password-reset", "Mail a password reset link (if the address "
           "has an account)", "accounts", body=ResetRequest,
           responses={202: Reply("queued, or nothing to do: the same answer", ResetQueued)},
           errors={429: ("too_many_attempts",)})
async def request_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetRequest)
    await check_address(request, "password")
    user = await users.request_reset(request.app[PG_POOL], email=body.email,
                                     link_base=request.app[PUBLIC_URL],
                                     now=request.app[CLOCK]())
    if user is not None:
        principal = Principal("user", user.tenant_id, role=user.role, id=str(user.id),
                              label=user.email)
        await audit(request, "user.password_reset_requested", target=str(user.id),
                    principal=principal)
    return respond(ResetQueued(status="queued"), 202)


def add_routes(app: web.Application) -> None:
    add(app, login, get_session, logout, set_password, request_reset)

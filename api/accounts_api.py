"""A tenant's users and API keys, the operators, and the audit log (docs/accounts.md).

Owners and admins manage users and keys (only an owner touches an owner); a full-scope
API key manages them as an owner would. Every change is in the audit log."""

from __future__ import annotations

import datetime as dt
import uuid

from aiohttp import web

from api.accounts_models import (
    AdminAuditQuery,
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRotated,
    AuditEntry,
    AuditPage,
    AuditQuery,
    CreateKey,
    Invite,
    OperatorInvite,
    RoleChange,
    RotateKey,
    User,
    UserList,
)
from api.audit import audit
from api.auth import principal_of
from api.billing_tenant import rfc3339
from api.context import CLOCK, PG_POOL, PUBLIC_URL
from api.errors import InvalidField
from api.keycache import announce_change
from api.operations import Reply, add, operation, respond
from api.requests import parse_body, parse_query, path_uuid, require_admin, require_tenant
from metering.accounts import api_keys, users
from metering.accounts import audit as audit_log

USER_ID = {"user_id": {"type": "string", "format": "uuid"}}
KEY_ID = {"key_id": {"type": "string", "format": "uuid"}}
NO_CONTENT = Reply("done", media="", schema=None)


def _user(user: users.User) -> User:
    return User(**user.to_json())


def _key(key: api_keys.ApiKey) -> ApiKey:
    return ApiKey(**key.to_json())


# ---- users ------------------------------------------------------------------------------

@operation("POST", "/v1/users", "Invite a user by e-mail (a link valid 24 h, used once)",
           "accounts", security="tenant", body=Invite,
           responses={201: Reply("the user, inactive until the link is used", User)},
           errors={403: ("role_forbidden",), 409: ("email_taken",)},
           description="Roles: owner, admin, billing (plan, invoices, top-ups), analyst "
                       "(read-only usage, calls, KPIs). Only an owner invites an owner.")
async def invite_user(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, Invite)
    user = await users.invite_user(
        request.app[PG_POOL], tenant_id=tenant_id, email=body.email, role=body.role,
        link_base=request.app[PUBLIC_URL], now=request.app[CLOCK](),
        actor_role=principal_of(request).manages_as)
    await audit(request, "user.invited", target=str(user.id),
                changes={"email": user.email, "role": user.role})
    return respond(_user(user), 201)


@operation("GET", "/v1/users", "Your users", "accounts", security="tenant",
           responses={200: Reply("every user, oldest first", UserList)})
async def list_users(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    found = await users.list_users(request.app[PG_POOL], tenant_id)
    return respond(UserList(users=[_user(u) for u in found]))


@operation("PATCH", "/v1/users/{user_id}", "Change a user's role", "accounts",
           security="tenant", body=RoleChange, path_params=USER_ID,
           responses={200: Reply("the user", User)},
           errors={403: ("role_forbidden",), 409: ("last_owner",)},
           description="The last owner keeps the role (409 `last_owner`).")
async def change_role(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    user_id = path_uuid(request, "user_id")
    body = await parse_body(request, RoleChange)
    user, was = await users.change_role(request.app[PG_POOL], tenant_id=tenant_id,
                                        user_id=user_id, role=body.role,
                                        actor_role=principal_of(request).manages_as)
    await audit(request, "user.role_changed", target=str(user.id),
                changes={"email": user.email, "role": [was, user.role]})
    return respond(_user(user))


@operation("DELETE", "/v1/users/{user_id}", "Remove a user (their sessions end)", "accounts",
           security="tenant", path_params=USER_ID, responses={204: NO_CONTENT},
           errors={403: ("role_forbidden",), 409: ("last_owner",)})
async def delete_user(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    user_id = path_uuid(request, "user_id")
    user = await users.delete_user(request.app[PG_POOL], tenant_id=tenant_id, user_id=user_id,
                                   actor_role=principal_of(request).manages_as)
    await audit(request, "user.deleted", target=str(user.id),
                changes={"email": user.email, "role": user.role})
    return web.Response(status=204)


# ---- API keys -----------------------------------------------------------------------------

@operation("POST", "/v1/api-keys", "Create an API key; it is shown once", "accounts",
           security="tenant", body=CreateKey,
           responses={201: Reply("the key, with its secret", ApiKeyCreated)},
           errors={409: ("too_many_keys",)},
           description="`read` keys may only GET: a write answers 403 `insufficient_scope`.")
async def create_key(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, CreateKey)
    key, secret = await api_keys.create_key(request.app[PG_POOL], tenant_id, body.name,
                                            body.scope)
    await audit(request, "api_key.created", target=str(key.id),
                changes={"name": key.name, "scope": key.scope, "prefix": key.prefix})
    return respond(ApiKeyCreated(**key.to_json(), key=secret), 201)


@operation("GET", "/v1/api-keys", "Your API keys that work now (never their secrets)",
           "accounts", security="tenant",
           responses={200: Reply("the keys, oldest first", ApiKeyList)})
async def list_keys(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    found = await api_keys.list_keys(request.app[PG_POOL], tenant_id, request.app[CLOCK]())
    return respond(ApiKeyList(api_keys=[_key(k) for k in found]))


@operation("DELETE", "/v1/api-keys/{key_id}", "Revoke a key: refused by every gateway "
           "within a second", "accounts", security="tenant", path_params=KEY_ID,
           responses={204: NO_CONTENT}, errors={404: ("not_found",)})
async def revoke_key(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    key_id = path_uuid(request, "key_id")
    key, key_hash = await api_keys.revoke_key(request.app[PG_POOL], tenant_id, key_id,
                                              request.app[CLOCK]())
    await announce_change(request.app, key_hash)
    await audit(request, "api_key.revoked", target=str(key.id),
                changes={"name": key.name, "prefix": key.prefix})
    return web.Response(status=204)


@operation("POST", "/v1/api-keys/{key_id}/rotate", "Issue a successor; the old key works "
           "for a grace period (at most 7 days)", "accounts", security="tenant",
           body=RotateKey, path_params=KEY_ID,
           responses={201: Reply("the successor with its secret, and the old key",
                                 ApiKeyRotated)},
           errors={404: ("not_found",), 409: ("key_rotated", "too_many_keys")})
async def rotate_key(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    key_id = path_uuid(request, "key_id")
    body = await parse_body(request, RotateKey)
    new, secret, old, old_hash = await api_keys.rotate_key(
        request.app[PG_POOL], tenant_id, key_id, dt.timedelta(seconds=body.grace_seconds),
        request.app[CLOCK]())
    await announce_change(request.app, old_hash)
    await audit(request, "api_key.rotated", target=str(old.id),
                changes={"successor": str(new.id), "prefix": new.prefix,
                         "grace_seconds": body.grace_seconds,
                         "old_key_expires_at": None if old.expires_at is None
                         else old.expires_at.isoformat()})
    return respond(ApiKeyRotated(**new.to_json(), key=secret, previous=_key(old)), 201)


# ---- audit --------------------------------------------------------------------------------

def _page(page: audit_log.Page) -> AuditPage:
    return AuditPage(entries=[AuditEntry(**e.to_json()) for e in page.items],
                     next_cursor=page.next_cursor)


@operation("GET", "/v1/audit", "Who did what in your account, newest first", "accounts",
           security="tenant", query=AuditQuery,
           responses={200: Reply("a page of entries", AuditPage)})
async def tenant_audit(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, AuditQuery)
    page = await audit_log.list_entries(
        request.app[PG_POOL], tenant_id=tenant_id, all_tenants=False,
        since=rfc3339("from", query.from_), until=rfc3339("to", query.to),
        action=query.action, cursor=query.cursor, limit=query.limit)
    return respond(_page(page))


@operation("GET", "/admin/audit", "Every audit entry (operators and tenants), newest first",
           "accounts", security="admin", query=AdminAuditQuery,
           responses={200: Reply("a page of entries", AuditPage)})
async def admin_audit(request: web.Request) -> web.Response:
    require_admin(request)
    query = parse_query(request, AdminAuditQuery)
    tenant_id = None
    if query.tenant_id is not None:
        try:
            tenant_id = uuid.UUID(query.tenant_id)
        except ValueError as exc:
            raise InvalidField("tenant_id", "is not a UUID") from exc
    page = await audit_log.list_entries(
        request.app[PG_POOL], tenant_id=tenant_id, all_tenants=tenant_id is None,
        since=rfc3339("from", query.from_), until=rfc3339("to", query.to),
        action=query.action, cursor=query.cursor, limit=query.limit)
    return respond(_page(page))


# ---- operators ------------------------------------------------------------------------------

@operation("POST", "/admin/operators", "Invite an operator (operator or viewer) by e-mail",
           "accounts", security="admin", body=OperatorInvite,
           responses={201: Reply("the operator, inactive until the link is used", User)},
           errors={409: ("email_taken",)})
async def invite_operator(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parse_body(request, OperatorInvite)
    user = await users.invite_user(request.app[PG_POOL], tenant_id=None, email=body.email,
                                   role=body.role, link_base=request.app[PUBLIC_URL],
                                   now=request.app[CLOCK]())
    await audit(request, "operator.invited", target=str(user.id),
                changes={"email": user.email, "role": user.role})
    return respond(_user(user), 201)


@operation("GET", "/admin/operators", "The operators", "accounts", security="admin",
           responses={200: Reply("every operator, oldest first", UserList)})
async def list_operators(request: web.Request) -> web.Response:
    require_admin(request)
    found = await users.list_users(request.app[PG_POOL], None)
    return respond(UserList(users=[_user(u) for u in found]))


@operation("DELETE", "/admin/operators/{user_id}", "Remove an operator", "accounts",
           security="admin", path_params=USER_ID, responses={204: NO_CONTENT})
async def delete_operator(request: web.Request) -> web.Response:
    require_admin(request)
    user = await users.delete_user(request.app[PG_POOL], tenant_id=None,
                                   user_id=path_uuid(request, "user_id"), actor_role=None)
    await audit(request, "operator.deleted", target=str(user.id),
                changes={"email": user.email, "role": user.role})
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    add(app, invite_user, list_users, change_role, delete_user, create_key, list_keys,
        revoke_key, rotate_key, tenant_audit, admin_audit, invite_operator, list_operators,
        delete_operator)

"""Request and response models of the accounts API: sign-in, users, API keys, audit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.billing_models import StrictRequest
from api.models import Answer, Instant
from metering.accounts.api_keys import MAX_GRACE
from metering.accounts.passwords import MAX_PASSWORD

TenantRole = Literal["owner", "admin", "billing", "analyst"]
OperatorRole = Literal["operator", "viewer"]
Email = Field(min_length=3, max_length=254, examples=["ana@example.com"])


class Login(StrictRequest):
    email: str = Email
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class SessionUser(Answer):
    id: str
    email: str
    role: str
    tenant_id: str | None = Field(description="null for an operator")


class SessionAnswer(Answer):
    user: SessionUser
    csrf_token: str = Field(description="send as X-CSRF-Token on every request that is "
                                        "not GET while signed in")
    expires_at: Instant


class SetPassword(StrictRequest):
    token: str = Field(min_length=1, max_length=200,
                       description="the token of the invite or reset link")
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class PasswordSet(Answer):
    email: str
    role: str


class ResetRequest(StrictRequest):
    email: str = Email


class ResetQueued(Answer):
    status: Literal["queued"] = Field(
        "queued", description="the same answer whether or not the address has an account")


class Invite(StrictRequest):
    email: str = Email
    role: TenantRole


class OperatorInvite(StrictRequest):
    email: str = Email
    role: OperatorRole


class RoleChange(StrictRequest):
    role: TenantRole


class User(Answer):
    id: str
    email: str
    role: str
    active: bool = Field(description="false until the invite's link is used")
    created_at: Instant


class UserList(Answer):
    users: list[User]


class CreateKey(StrictRequest):
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["full", "read"] = "full"


class RotateKey(StrictRequest):
    grace_seconds: int = Field(86400, ge=0, le=int(MAX_GRACE.total_seconds()),
                               description="how long the old key keeps working")


class ApiKey(Answer):
    id: str
    name: str
    scope: str
    prefix: str = Field(description="the key's first characters")
    created_at: Instant
    last_used_at: Instant | None
    expires_at: Instant | None = Field(description="set once rotated: the grace's end")


class ApiKeyCreated(ApiKey):
    key: str = Field(description="vgw_...: shown once")


class ApiKeyRotated(ApiKeyCreated):
    previous: ApiKey


class ApiKeyList(Answer):
    api_keys: list[ApiKey]


class AuditQuery(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", populate_by_name=True)
    from_: str | None = Field(None, alias="from", description="RFC 3339, inclusive")
    to: str | None = Field(None, description="RFC 3339, exclusive")
    action: str | None = Field(None, max_length=64, pattern=r"^[a-z_.]+$",
                               description="exact, or a prefix (`api_key`)")
    cursor: str | None = Field(None, max_length=32)
    limit: int = Field(50, ge=1, le=200)


class AdminAuditQuery(AuditQuery):
    tenant_id: str | None = Field(None, description="one tenant's entries only")


class Actor(Answer):
    kind: Literal["user", "api_key", "admin_token", "system"]
    id: str | None
    label: str | None


class AuditEntry(Answer):
    id: int
    tenant_id: str | None
    at: Instant
    actor: Actor
    address: str | None
    action: str
    target: str | None
    changes: dict[str, Any]


class AuditPage(Answer):
    entries: list[AuditEntry]
    next_cursor: str | None

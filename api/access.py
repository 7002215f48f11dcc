"""Who may call what: one decision per route, in one table (docs/accounts.md).

A decision names the area and the roles allowed:

- `public`: no credentials (health, docs, pages, login, vendor webhooks that carry
  their own signatures);
- `session`: any signed-in person (`/auth/session`, `/auth/logout`);
- `tenant`: a tenant's users with one of `roles`, or an API key of the tenant: a `full`
  key anywhere, a `read` key only on GET (a write answers 403 `insufficient_scope`) and
  on the few other methods marked `reads` (they change nothing the tenant owns);
- `admin`: the admin token, or an operator user with one of `roles`.

`tests/api/test_access.py` fails when a mounted route has no decision here. A route
missing from the table still gets the strictest decision its `@operation` security
allows (owners and admins; operators), never an open door.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Area = Literal["public", "session", "tenant", "admin"]

OWNER, ADMIN, BILLING, ANALYST = "owner", "admin", "billing", "analyst"
OPERATOR, VIEWER = "operator", "viewer"
TENANT_ROLES = (OWNER, ADMIN, BILLING, ANALYST)
OPERATOR_ROLES = (OPERATOR, VIEWER)


@dataclass(frozen=True)
class Decision:
    area: Area
    roles: frozenset[str] = frozenset()
    reads: bool = False  # not a GET, yet changes nothing: a read key may call it

    def allows(self, role: str) -> bool:
        return role in self.roles


PUBLIC = Decision("public")
SESSION = Decision("session")


def tenant(*roles: str) -> Decision:
    return Decision("tenant", frozenset(roles))


def admin(*roles: str) -> Decision:
    return Decision("admin", frozenset(roles))


EVERYONE = tenant(OWNER, ADMIN, BILLING, ANALYST)  # reading KPIs, usage, calls
MONEY = tenant(OWNER, ADMIN, BILLING)               # balance, top-ups, plan, invoices
# A stream token: a POST, but it only reads (every role; balance events for MONEY roles).
LIVE_TOKEN = Decision("tenant", EVERYONE.roles, reads=True)
MANAGE = tenant(OWNER, ADMIN)                       # users, keys, webhooks, messages, audit
OPS_READ = admin(OPERATOR, VIEWER)
OPS_WRITE = admin(OPERATOR)

ROUTES: dict[tuple[str, str], Decision] = {
    # ---- public: no credentials, or the vendor's own signature ------------------------
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/{asset}"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,
    ("GET", "/dashboard/{asset}"): PUBLIC,
    # The live stream authenticates itself: a single-use stream token in the query (a
    # browser's EventSource sends no header), else what an EVERYONE route takes; only
    # the MONEY roles get its balance events (api.live).
    ("GET", "/v1/live"): PUBLIC,
    ("GET", "/dev/mail"): PUBLIC,  # mounted by `voicegw dev` only
    ("GET", "/whatsapp/webhook"): PUBLIC,
    ("POST", "/whatsapp/webhook"): PUBLIC,
    ("POST", "/twilio/sms"): PUBLIC,
    ("POST", "/twilio/sms/status"): PUBLIC,
    ("POST", "/twilio/voice"): PUBLIC,
    ("POST", "/twilio/status"): PUBLIC,
    ("GET", "/twilio/stream"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/users"): PUBLIC,      # the page; its data needs a session
    ("GET", "/api-keys"): PUBLIC,   # the page; its data needs a session
    ("GET", "/auth.js"): PUBLIC,
    ("GET", "/admin/dashboard"): PUBLIC,  # the operators' page; its data needs a sign-in
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/password"): PUBLIC,        # the link's token is the credential
    ("POST", "/auth/password-reset"): PUBLIC,  # answers the same for any address
    ("GET", "/auth/session"): SESSION,
    ("POST", "/auth/logout"): SESSION,
    # ---- tenant: reading what happened ------------------------------------------------
    ("GET", "/v1/usage"): EVERYONE,
    ("GET", "/v1/calls"): EVERYONE,
    ("GET", "/v1/calls/{call_sid}"): EVERYONE,
    ("GET", "/v1/successes"): EVERYONE,
    ("GET", "/v1/kpis"): EVERYONE,
    ("GET", "/v1/kpis/commentary"): EVERYONE,
    ("GET", "/v1/reports/weekly"): EVERYONE,
    ("GET", "/v1/conversations"): EVERYONE,
    ("GET", "/v1/conversations.csv"): EVERYONE,
    ("GET", "/v1/conversations/{conversation_id}"): EVERYONE,
    ("GET", "/v1/settings"): EVERYONE,
    ("POST", "/v1/live/token"): LIVE_TOKEN,
    # ---- tenant: money ----------------------------------------------------------------
    ("GET", "/v1/balance"): MONEY,

    ("POST", "/v1/topups"): MONEY,
    ("GET", "/v1/topups/{topup_id}"): MONEY,
    ("GET", "/v1/plans"): MONEY,
    ("GET", "/v1/plan"): MONEY,
    ("PUT", "/v1/plan"): MONEY,
    ("GET", "/v1/invoices/upcoming"): MONEY,
    ("GET", "/v1/invoices"): MONEY,
    ("GET", "/v1/invoices/{invoice_id}"): MONEY,
    ("GET", "/v1/invoices/{invoice_id}/pdf"): MONEY,
    ("GET", "/v1/alerts"): MONEY,
    ("PUT", "/v1/alerts"): MONEY,
    # ---- tenant: systems and access ---------------------------------------------------
    ("POST", "/v1/successes"): MANAGE,
    ("POST", "/v1/messages"): MANAGE,
    ("POST", "/v1/webhooks"): MANAGE,
    ("GET", "/v1/webhooks"): MANAGE,
    ("DELETE", "/v1/webhooks/{webhook_id}"): MANAGE,
    ("POST", "/v1/webhooks/{webhook_id}/test"): MANAGE,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): MANAGE,
    ("POST", "/v1/users"): MANAGE,
    ("GET", "/v1/users"): MANAGE,
    ("PATCH", "/v1/users/{user_id}"): MANAGE,
    ("DELETE", "/v1/users/{user_id}"): MANAGE,
    ("POST", "/v1/api-keys"): MANAGE,
    ("GET", "/v1/api-keys"): MANAGE,
    ("DELETE", "/v1/api-keys/{key_id}"): MANAGE,
    ("POST", "/v1/api-keys/{key_id}/rotate"): MANAGE,
    ("GET", "/v1/audit"): MANAGE,
    ("PATCH", "/v1/settings"): MANAGE,
    # ---- operators --------------------------------------------------------------------
    ("POST", "/admin/tenants"): OPS_WRITE,
    ("GET", "/admin/tenants/{tenant_id}"): OPS_READ,
    ("POST", "/admin/tenants/{tenant_id}/numbers"): OPS_WRITE,
    ("GET", "/admin/tenants/{tenant_id}/agent"): OPS_READ,
    ("PUT", "/admin/tenants/{tenant_id}/agent"): OPS_WRITE,
    ("GET", "/admin/tenants/{tenant_id}/settings"): OPS_READ,
    ("PATCH", "/admin/tenants/{tenant_id}/settings"): OPS_WRITE,
    ("PUT", "/admin/tenants/{tenant_id}/plan"): OPS_WRITE,
    ("POST", "/admin/plans"): OPS_WRITE,
    ("GET", "/admin/plans"): OPS_READ,
    ("GET", "/admin/plans/{plan_id}"): OPS_READ,
    ("POST", "/admin/invoices/close"): OPS_WRITE,
    ("POST", "/admin/invoices/{invoice_id}/paid"): OPS_WRITE,
    ("POST", "/admin/invoices/{invoice_id}/void"): OPS_WRITE,
    ("POST", "/admin/operators"): OPS_WRITE,
    ("GET", "/admin/operators"): OPS_READ,
    ("DELETE", "/admin/operators/{user_id}"): OPS_WRITE,
    ("GET", "/admin/audit"): OPS_READ,
    ("PUT", "/admin/tenants/{tenant_id}/billing-email"): OPS_WRITE,
    ("POST", "/admin/tariff-reviews"): OPS_WRITE,
    ("GET", "/admin/tasks"): OPS_READ,
    ("GET", "/admin/tasks/{task_id}"): OPS_READ,
    ("POST", "/admin/tasks/{task_id}/preview"): OPS_READ,  # renders, sends nothing
    ("POST", "/admin/tasks/{task_id}/offer"): OPS_WRITE,
    ("POST", "/admin/tasks/{task_id}/resolve"): OPS_WRITE,
    ("GET", "/admin/templates"): OPS_READ,
    ("PUT", "/admin/templates/{name}"): OPS_WRITE,
}


def fallback(security: str | None) -> Decision:
    """The decision of a route the table forgot: the strictest its security allows."""
    if security == "tenant":
        return MANAGE
    if security == "admin":
        return OPS_WRITE
    return PUBLIC

"""Billing errors, one tree:

    BillingError
    ├── InvalidField     a value that cannot be used; `field` names it (HTTP: 422 invalid_field)
    │   └── PeriodNotEnded   closing a running or future period (field `period`)
    ├── NotFound         no such plan / invoice / subscription for this tenant (404)
    ├── Conflict         the request contradicts what is stored (409), e.g. an
    │   │                Idempotency-Key replayed with another body
    │   └── InvalidTransition  an invoice status change that is not allowed (409)
    └── MailFailed       an offer e-mail could not be sent (503); nothing marked as sent
"""

from __future__ import annotations


class BillingError(Exception):
    """The root of every billing error."""


class InvalidField(BillingError, ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class PeriodNotEnded(InvalidField):
    def __init__(self, period: str) -> None:
        super().__init__("period", f"{period} has not ended yet; only ended periods close")


class NotFound(BillingError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")
        self.what = what


class Conflict(BillingError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code  # idempotency_conflict | invalid_transition | ...


class InvalidTransition(Conflict):
    def __init__(self, detail: str) -> None:
        super().__init__("invalid_transition", detail)


class MailFailed(BillingError):
    """An offer could not be e-mailed (no SMTP server configured, or it failed): nothing
    was marked as sent (HTTP: 503 mail_failed)."""

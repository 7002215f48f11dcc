"""What the notification services refuse; an HTTP handler maps them to problems."""

from __future__ import annotations


class NotifyError(Exception):
    """Root of the notification errors."""


class InvalidField(NotifyError, ValueError):
    """Input refused; `field` names it (a 422 naming the field)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class NotFound(NotifyError, LookupError):
    """No such resource for this tenant (a 404: another tenant's looks the same)."""

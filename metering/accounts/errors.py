"""The accounts' domain errors; `api.errors.domain_problem` maps each to its problem.

    AccountError
    ├── InvalidField     a member is wrong (422 naming it)
    ├── NotFound         no such user or key in this tenant (404)
    ├── Conflict         `code` says which: email_taken, last_owner (409)
    ├── LinkError        an invite or reset link: link_invalid, link_expired, link_used
    └── RoleForbidden    the caller's role may not touch that role (403 role_forbidden)
"""

from __future__ import annotations


class AccountError(Exception):
    """Root of the accounts' errors."""


class InvalidField(AccountError, ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class NotFound(AccountError, LookupError):
    pass


class Conflict(AccountError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class LinkError(AccountError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class RoleForbidden(AccountError, PermissionError):
    pass

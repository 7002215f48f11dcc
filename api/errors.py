"""The API's one exception tree, and the one table that maps domain errors to it.

Every class carries its HTTP status and problem `code`; services and handlers raise them
(or a metering domain error) and `api.middleware.problem_middleware` answers, once:

    Problem                       (api.problems: status and code given explicitly)
    └── ApiError                  status and code carried by the class
        ├── BadRequest            400 bad_request
        ├── Unauthorized          401 unauthorized (WWW-Authenticate: Bearer)
        ├── Forbidden             403 forbidden
        ├── NotFound              404 not_found
        ├── Conflict              409 conflict (a subclass or `code=` names which)
        ├── PayloadTooLarge       413 payload_too_large
        ├── UnsupportedMediaType  415 unsupported_media_type
        ├── InvalidField          422 invalid_field, `field` names the member
        └── Unavailable           503 (store_unavailable, topup_pending, ...)

Metering never imports the API: its errors are mapped here by class (`domain_problem`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from api.problems import Problem
from metering.agent_configs import AgentConfigError
from metering.billing import errors as billing
from metering.bounds import MAX_BALANCE_CREDITS, MAX_BALANCE_MICRO, BalanceLimit, OutOfBounds
from metering.money import format_credits
from metering.notify import errors as notify
from metering.ratecard import RateCardError
from metering.tenants import DuplicateNumber
from metering.topups import IdempotencyConflict, TopupPending

log = logging.getLogger("voicegw.http")

TOPUP_RETRY_AFTER_S = 1
AUTH_HEADERS = {"WWW-Authenticate": 'Bearer realm="voicegw"'}


class ApiError(Problem):
    """A problem whose status and default code are the class's."""

    default_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(self.default_status, code or self.default_code, detail,
                         headers=headers, **extra)


class BadRequest(ApiError):
    default_status, default_code = 400, "bad_request"


class Unauthorized(ApiError):
    default_status, default_code = 401, "unauthorized"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers=dict(AUTH_HEADERS), **extra)


class Forbidden(ApiError):
    default_status, default_code = 403, "forbidden"


class NotFound(ApiError):
    default_status, default_code = 404, "not_found"


class Conflict(ApiError):
    default_status, default_code = 409, "conflict"


class PayloadTooLarge(ApiError):
    default_status, default_code = 413, "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"bodies are limited to {limit} bytes")


class UnsupportedMediaType(ApiError):
    default_status, default_code = 415, "unsupported_media_type"


class InvalidField(ApiError):
    """422 naming the offending member in `field` (and in the detail, before a colon)."""

    default_status, default_code = 422, "invalid_field"

    def __init__(self, field: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{field}: {detail}", field=field, **extra)


class Unavailable(ApiError):
    default_status, default_code = 503, "unavailable"


def domain_problem(exc: Exception) -> Problem | None:
    """The problem a metering domain error answers, or None for anything else (a bug)."""
    if isinstance(exc, BalanceLimit):  # before OutOfBounds, its base
        return Conflict(
            f"a balance may hold at most {MAX_BALANCE_CREDITS} credits; this top-up would "
            "pass it (nothing was recorded)", code="balance_limit",
            max_balance_credits=format_credits(MAX_BALANCE_MICRO),
            balance_credits=format_credits(exc.balance_micro))
    if isinstance(exc, TopupPending):
        # The ledger has it; the live balance does not yet. No answer is stored, so a
        # retry with the same key applies it and gets the first real answer.
        log.warning("top-up %s recorded but not credited: %s", exc.topup_id, exc.__cause__)
        return Unavailable(
            "the top-up is recorded but not yet credited; retry with the same "
            "Idempotency-Key to complete it", code="topup_pending", topup_id=str(exc.topup_id),
            headers={"Retry-After": str(TOPUP_RETRY_AFTER_S)})
    if isinstance(exc, IdempotencyConflict):
        return Conflict("this Idempotency-Key was used with a different request body",
                        code="idempotency_key_reused")
    if isinstance(exc, DuplicateNumber):
        return Conflict("that number or WhatsApp id is already held", code="number_taken")
    if isinstance(exc, RateCardError):  # only a tenant's `rate_card` member is a rate card
        return InvalidField("rate_card", str(exc), rate_card_field=exc.field)
    if isinstance(exc, OutOfBounds | AgentConfigError | billing.InvalidField
                  | notify.InvalidField):
        return InvalidField(exc.field, str(exc).partition(": ")[2] or str(exc))
    if isinstance(exc, billing.NotFound | notify.NotFound):
        return NotFound(str(exc))
    if isinstance(exc, billing.MailFailed):
        return Unavailable(str(exc), code="mail_failed")
    if isinstance(exc, billing.Conflict):
        # One code for a replayed key with another body, whichever resource it creates.
        code = "idempotency_key_reused" if exc.code == "idempotency_conflict" else exc.code
        return Conflict(str(exc), code=code)
    return None

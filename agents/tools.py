"""The agent's tools, shared by the voice and the text agent: their JSON schemas (as the
OpenAI API takes them) and one executor that validates the LLM's arguments and writes the
outcome.

`book_appointment`, `create_support_ticket` and `place_order` write the business record
and its success event once (`metering.outcomes`); `transfer_to_human` records a handoff
and asks the channel to transfer; `end_call(resolved)` asks the channel to end the
conversation and says whether the customer's request was handled (the conversation's
`resolved`).
What the channel does with `action` is its own business: a phone call dials the
operator, a chat tells the customer a person will write back.

Arguments come from a language model: anything may be missing or malformed. A bad
argument never raises; the model gets an error result it can recover from by asking the
customer again.

A record the store cannot take (PostgreSQL down, a dropped connection, an exhausted pool)
is tried again briefly: `STORE_ATTEMPTS` times within `STORE_BUDGET_S`, because a caller
is waiting on the line. The writes are idempotent on `<session>:<tool call id>`, so an
attempt whose commit landed but whose answer was lost finds its record on the next one.
If it still fails, the model is told the real outcome (nothing was saved, apologise),
never a confirmation, and the result carries a `ToolFailure` for the conversation record
and the metrics. Nothing a tool does raises into the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import asyncpg
import asyncpg.exceptions as pg_errors
import orjson

from metering.outcomes import (
    Appointment,
    Order,
    Origin,
    RecordedOutcome,
    Ticket,
    record_handoff,
    record_outcome,
)

log = logging.getLogger("voicegw.tools")

Action = Literal["none", "end", "transfer"]
MAX_TEXT = 500
MAX_ITEMS = 50

STORE_ATTEMPTS = 3
STORE_BACKOFF_S = (0.1, 0.3)  # before the second and the third attempt
STORE_BUDGET_S = 2.0  # all attempts together: the caller hears silence meanwhile
# The store being away or busy, worth another attempt: connections refused, dropped or
# timed out, the server shutting down or refusing connections, too many connections, a
# serialisation conflict, and a pooled connection the server terminated while it sat idle
# (asyncpg then answers InternalClientError: "another operation is in progress").
# Anything else (a constraint, bad data) fails at once.
TRANSIENT_STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, pg_errors.InternalClientError,
    pg_errors.PostgresConnectionError, pg_errors.OperatorInterventionError,
    pg_errors.InsufficientResourcesError, pg_errors.ObjectNotInPrerequisiteStateError,
    pg_errors.TransactionRollbackError)
_NOT_SAVED = {
    "book_appointment": "the appointment could not be booked",
    "create_support_ticket": "the support ticket could not be created",
    "place_order": "the order could not be placed",
    "transfer_to_human": "no person could be reached",
}
_NOT_SAVED_HINT = ("nothing was saved: apologise, tell the customer it did not go through, "
                   "and offer to try again later or to talk to a person")
_T = TypeVar("_T")


def _fn(name: str, description: str, properties: dict[str, Any],
        required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}}


_STR = {"type": "string"}
TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "book_appointment": _fn(
        "book_appointment", "Book an appointment once the customer confirmed name, time and "
        "service.", {"name": _STR, "when": {**_STR, "description": "as the customer said it"},
                     "service": _STR, "notes": _STR}, ["name", "when", "service"]),
    "create_support_ticket": _fn(
        "create_support_ticket", "Open a support ticket describing the customer's problem.",
        {"summary": _STR, "priority": {"type": "string", "enum": ["low", "normal", "high"]}},
        ["summary"]),
    "place_order": _fn(
        "place_order", "Place an order once the customer confirmed the items.",
        {"items": {"type": "array", "items": {"type": "object", "properties": {
            "name": _STR, "quantity": {"type": "integer", "minimum": 1}},
            "required": ["name", "quantity"]}}, "notes": _STR}, ["items"]),
    "transfer_to_human": _fn(
        "transfer_to_human", "Hand the conversation to a person at the business.",
        {"reason": _STR}, []),
    "end_call": _fn(
        "end_call", "End the conversation after saying goodbye.",
        {"resolved": {"type": "boolean", "description":
                      "true when the customer's request was fully handled"}}, ["resolved"]),
}


@dataclass(frozen=True)
class ToolContext:
    pool: asyncpg.Pool
    origin: Origin
    operator_number: str | None = None  # where a phone transfer goes


@dataclass(frozen=True)
class ToolFailure:
    """A tool whose record could not be saved, for the conversation record and metrics."""

    tool: str
    call_id: str
    channel: str
    error: str  # the exception's class name, never its message (hosts, data)
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "call_id": self.call_id, "error": self.error,
                "attempts": self.attempts}


ToolFailureHook = Callable[[ToolFailure], None]  # the gateway counts failures with it


class StoreFailed(Exception):
    def __init__(self, failure: ToolFailure) -> None:
        super().__init__(f"{failure.tool}: {failure.error}")
        self.failure = failure


@dataclass(frozen=True)
class ToolResult:
    content: dict[str, Any]  # what the model reads back
    action: Action = "none"
    outcome: RecordedOutcome | None = None
    transfer_to: str | None = None
    failure: ToolFailure | None = None  # its record could not be saved
    resolved: bool = False  # end_call(resolved=true): the customer's request was handled

    @property
    def ok(self) -> bool:
        return "error" not in self.content


class BadArguments(ValueError):
    pass


def _text(args: Mapping[str, Any], name: str, *, required: bool = True,
          default: str = "") -> str:
    value = args.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadArguments(f"{name} is required")
        return default
    if not isinstance(value, str):
        raise BadArguments(f"{name} must be text")
    return value.strip()[:MAX_TEXT]


def _items(args: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    items = args.get("items")
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise BadArguments(f"items must be a list of 1 to {MAX_ITEMS} items")
    parsed: list[tuple[str, int]] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadArguments("each item needs a name and a quantity")
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity < 10_000:
            raise BadArguments("quantity must be a whole number from 1")
        parsed.append((_text(item, "name"), quantity))
    return tuple(parsed)


def parse_arguments(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadArguments("arguments are not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadArguments("arguments must be a JSON object")
    return value


async def run_tool(ctx: ToolContext, name: str, call_id: str,
                   raw_arguments: str | Mapping[str, Any] | None) -> ToolResult:
    """Runs one tool call; never raises for what the model sent or the store did."""
    try:
        args = parse_arguments(raw_arguments)
        return await _dispatch(ctx, name, call_id, args)
    except BadArguments as exc:
        return ToolResult({"error": str(exc), "hint": "ask the customer, then try again"})
    except StoreFailed as exc:
        return ToolResult({"error": _NOT_SAVED.get(name, "it could not be saved"),
                           "hint": _NOT_SAVED_HINT}, failure=exc.failure)


async def _saved(ctx: ToolContext, name: str, call_id: str,
                 write: Callable[[], Awaitable[_T]]) -> _T:
    """`write()`, tried again on a transient store error within the budget; raises
    StoreFailed when it did not succeed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STORE_BUDGET_S
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout_at(deadline):
                return await write()
        except TRANSIENT_STORE_ERRORS as exc:
            error = type(exc).__name__
            pause = STORE_BACKOFF_S[attempt - 1] if attempt < STORE_ATTEMPTS else None
            if pause is None or loop.time() + pause >= deadline:
                break
            log.warning("tool %s could not save its record (%s); trying again", name, error,
                        extra={"call_id": ctx.origin.session_id})
            await asyncio.sleep(pause)
        except Exception as exc:  # not the store being away: another attempt would not help
            log.exception("tool %s failed", name, extra={"call_id": ctx.origin.session_id})
            error = type(exc).__name__
            break
    log.error("tool %s gave up after %d attempts (%s): nothing was saved", name, attempt,
              error, extra={"call_id": ctx.origin.session_id})
    raise StoreFailed(ToolFailure(name, call_id, ctx.origin.channel, error, attempt))


async def _dispatch(ctx: ToolContext, name: str, call_id: str,
                    args: dict[str, Any]) -> ToolResult:
    record: Appointment | Ticket | Order
    if name == "book_appointment":
        record = Appointment(_text(args, "name"), _text(args, "when"), _text(args, "service"),
                             _text(args, "notes", required=False))
    elif name == "create_support_ticket":
        priority = _text(args, "priority", required=False, default="normal")
        if priority not in ("low", "normal", "high"):
            raise BadArguments("priority must be low, normal or high")
        record = Ticket(_text(args, "summary"), priority)
    elif name == "place_order":
        record = Order(_items(args), _text(args, "notes", required=False))
    elif name == "transfer_to_human":
        reason = _text(args, "reason", required=False, default="customer asked for a person")
        failure = None
        try:
            await _saved(ctx, name, call_id, lambda: record_handoff(
                ctx.pool, ctx.origin, call_id, reason, ctx.operator_number))
        except StoreFailed as exc:
            if ctx.operator_number is None:  # a chat handoff is the record: none, no person
                raise
            failure = exc.failure  # a phone transfer reaches a person without the record
        return ToolResult({"status": "transferring"}, "transfer",
                          transfer_to=ctx.operator_number, failure=failure)
    elif name == "end_call":
        # A model that leaves `resolved` out did not say it was resolved; a value that
        # is not a boolean is asked for again.
        resolved = args.get("resolved", False)
        if not isinstance(resolved, bool):
            raise BadArguments("resolved must be true or false")
        return ToolResult({"status": "ending"}, "end", resolved=resolved)
    else:
        raise BadArguments(f"there is no tool called {name!r}")
    outcome = await _saved(ctx, name, call_id,
                           lambda: record_outcome(ctx.pool, ctx.origin, call_id, record))
    log.info("tool %s recorded %s", name, outcome.kind,
             extra={"call_id": ctx.origin.session_id})
    return ToolResult({"status": "confirmed", "reference": str(outcome.record_id)[:8]},
                      outcome=outcome)


def tool_schemas(names: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    return [TOOL_SCHEMAS[name] for name in names if name in TOOL_SCHEMAS]

"""The agent's tools, shared by the voice and the text agent: their JSON schemas (as the
OpenAI API takes them) and one executor that validates the LLM's arguments and writes the
outcome.

`book_appointment`, `create_support_ticket` and `place_order` write the business record
and its success event once (`metering.outcomes`); `transfer_to_human` records a handoff
and asks the channel to transfer; `end_call` asks the channel to end the conversation.
What the channel does with `action` is its own business: a phone call dials the
operator, a chat tells the customer a person will write back.

Arguments come from a language model: anything may be missing or malformed. A bad
argument never raises; the model gets an error result it can recover from by asking the
customer again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
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
    "end_call": _fn("end_call", "End the conversation after saying goodbye.", {}, []),
}


@dataclass(frozen=True)
class ToolContext:
    pool: asyncpg.Pool
    origin: Origin
    operator_number: str | None = None  # where a phone transfer goes


@dataclass(frozen=True)
class ToolResult:
    content: dict[str, Any]  # what the model reads back
    action: Action = "none"
    outcome: RecordedOutcome | None = None
    transfer_to: str | None = None

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
    """Runs one tool call; never raises for what the model sent."""
    try:
        args = parse_arguments(raw_arguments)
        return await _dispatch(ctx, name, call_id, args)
    except BadArguments as exc:
        return ToolResult({"error": str(exc), "hint": "ask the customer, then try again"})


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
        await record_handoff(ctx.pool, ctx.origin, call_id, reason, ctx.operator_number)
        return ToolResult({"status": "transferring"}, "transfer",
                          transfer_to=ctx.operator_number)
    elif name == "end_call":
        return ToolResult({"status": "ending"}, "end")
    else:
        raise BadArguments(f"there is no tool called {name!r}")
    outcome = await record_outcome(ctx.pool, ctx.origin, call_id, record)
    log.info("tool %s recorded %s", name, outcome.kind,
             extra={"call_id": ctx.origin.session_id})
    return ToolResult({"status": "confirmed", "reference": str(outcome.record_id)[:8]},
                      outcome=outcome)


def tool_schemas(names: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    return [TOOL_SCHEMAS[name] for name in names if name in TOOL_SCHEMAS]

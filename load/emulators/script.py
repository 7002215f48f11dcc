"""The LLM emulator's deterministic script: what it answers, and which tool it calls.

Pure: no I/O. It recognises booking, ticket, order, handoff and goodbye requests by
keywords and calls the matching tool when the request offered it; after a tool result it
confirms (or apologises, when the result is an error); otherwise it says that it is the
voicegw emulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INTENTS: list[tuple[str, re.Pattern[str]]] = [
    ("transfer_to_human", re.compile(r"\b(human|person|operator|agent|someone real)\b", re.I)),
    ("book_appointment", re.compile(r"\b(book|appointment|schedule|reserve)\b", re.I)),
    ("create_support_ticket", re.compile(r"\b(ticket|problem|broken|issue|support)\b", re.I)),
    ("place_order", re.compile(r"\b(order|buy|purchase)\b", re.I)),
    ("end_call", re.compile(r"\b(bye|goodbye)\b", re.I)),
]
_WHEN = re.compile(r"\b(today|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|"
                   r"sunday)(?:\s+at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?)?", re.I)


@dataclass(frozen=True)
class Reply:
    text: str
    tool: str | None = None
    arguments: dict[str, Any] | None = None


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _arguments(tool: str, said: str) -> dict[str, Any]:
    if tool == "book_appointment":
        when = _WHEN.search(said)
        return {"name": "Caller", "when": when.group(0) if when else "tomorrow at 10am",
                "service": "appointment"}
    if tool == "create_support_ticket":
        return {"summary": said[:200]}
    if tool == "place_order":
        return {"items": [{"name": said[:80], "quantity": 1}]}
    if tool == "transfer_to_human":
        return {"reason": "caller asked for a person"}
    if tool == "end_call":
        return {"resolved": not re.search(r"\b(unresolved|not solved)\b", said, re.I)}
    return {}


def decide(messages: list[dict[str, Any]], offered_tools: set[str]) -> Reply:
    if messages and messages[-1].get("role") == "tool":
        if '"error"' in _text_of(messages[-1]):  # as a model would: no false confirmation
            return Reply("I am sorry, that did not go through. Shall I try again later?")
        return Reply("All done, that is confirmed. Is there anything else I can help with?")
    said = next((_text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")
    for tool, pattern in _INTENTS:
        if tool in offered_tools and pattern.search(said):
            return Reply("", tool, _arguments(tool, said))
    gist = " ".join(said.split()[:12])
    if not gist:
        return Reply("Hello, this is the voicegw emulator. How can I help you today?")
    return Reply(f"This is the voicegw emulator. You said: {gist}. How can I help?")

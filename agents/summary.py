"""The summary of a conversation that ended: 2-3 sentences on what the customer wanted and
what happened, written by the LLM through the existing chat client (`agents.chat_client`).

Its tokens (prompt and completion together) are metered on `summary_tokens` by the
caller: free on the default card, visible in usage like any meter. A transcript with no
customer words (an abandoned call) needs no model: its summary is fixed text. A provider
that fails leaves no summary (None), never a made-up one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.chat_client import ChatClient, ChatError
from agents.tokens import count_tokens, prompt_tokens

log = logging.getLogger("voicegw.summary")

MAX_TRANSCRIPT_CHARS = 12_000  # the last part of a very long conversation is kept
MAX_SUMMARY_TOKENS = 160
INSTRUCTIONS = (
    "Summarize this customer conversation in 2 or 3 short sentences: what the customer "
    "wanted and what happened (bookings, orders, tickets, handoffs, unresolved issues). "
    "Plain text, no lists, no greeting, third person.")
NO_CUSTOMER_WORDS = "The customer said nothing before the conversation ended."


@dataclass(frozen=True)
class Summary:
    text: str
    tokens: int  # prompt + completion: the summary_tokens units
    used_model: bool


def transcript_text(turns: Sequence[dict[str, Any]],
                    tool_calls: Sequence[dict[str, Any]] = ()) -> str:
    lines = []
    for turn in turns:
        who = "Customer" if turn.get("role") == "customer" else "Agent"
        said = turn.get("heard_text") if turn.get("interrupted") else turn.get("text")
        if said:
            lines.append(f"{who}: {said}")
    for call in tool_calls:
        lines.append(f"[tool {call.get('name')}: {str(call.get('result'))[:200]}]")
    text = "\n".join(lines)
    return text[-MAX_TRANSCRIPT_CHARS:]


async def summarize(client: ChatClient, model: str, turns: Sequence[dict[str, Any]],
                    tool_calls: Sequence[dict[str, Any]] = ()) -> Summary | None:
    if not any(t.get("role") == "customer" and str(t.get("text") or "").strip()
               for t in turns):
        return Summary(NO_CUSTOMER_WORDS, 0, used_model=False)
    messages = [{"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": transcript_text(turns, tool_calls)}]
    try:
        completion = await client.complete({"model": model, "messages": messages,
                                            "max_tokens": MAX_SUMMARY_TOKENS})
    except ChatError as exc:
        log.warning("no summary: %s", exc)
        return None
    text = " ".join(str(completion.message.get("content") or "").split())
    if completion.usage is not None:
        tokens = completion.usage["prompt_tokens"] + completion.usage["completion_tokens"]
    else:  # the provider did not say: count it ourselves, as for every other LLM use
        tokens = prompt_tokens(messages, None) + count_tokens(text)
    return Summary(text[:1000], tokens, used_model=True) if text else None

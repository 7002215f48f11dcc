"""Token counts for what a provider did not report (an interrupted stream, a provider
without usage): tiktoken where its encoding is available offline, otherwise a documented
approximation of four characters a token.

tiktoken downloads its encodings on first use; a host without internet (or without a
cached copy in TIKTOKEN_CACHE_DIR) cannot load them. Failing a call for that would be
worse than approximating, and the approximation only applies to usage the provider did
not report, so it is the fallback and is said so in the docs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

# Every chat message carries a few tokens of framing (role, separators) in OpenAI's format.
MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3


@cache
def _encoding() -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    except Exception:  # no network and no cached copy: approximate below
        return None


def count_tokens(text: str) -> int:
    if not text:
        return 0
    encoding = _encoding()
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=()))
    return len(text) // 4 + 1


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content
                        if isinstance(part, Mapping))
    return "" if content is None else str(content)


def prompt_tokens(messages: Iterable[Mapping[str, Any]], tools: Any = None) -> int:
    """Tokens of a chat prompt as OpenAI counts them, to within a few tokens."""
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD + count_tokens(_text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            total += count_tokens(str(function.get("name", "")))
            total += count_tokens(str(function.get("arguments", "")))
    if tools:
        total += count_tokens(str(tools))
    return total

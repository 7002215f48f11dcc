"""Token counts as OpenAI reports them, with tiktoken where its encoding loads offline."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _encoding() -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    except Exception:  # no offline copy of the encoding: fall back below
        return None


def count_tokens(text: str) -> int:
    encoding = _encoding()
    if encoding is not None:
        return len(encoding.encode(text))
    return len(text) // 4 + 1 if text else 0  # documented approximation


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None) -> int:
    total = 3
    for message in messages:
        content = message.get("content")
        total += 3 + count_tokens(content if isinstance(content, str) else str(content or ""))
    if tools:
        total += count_tokens(str(tools))
    return total

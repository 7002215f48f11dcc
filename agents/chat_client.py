"""A lean client for OpenAI's chat completions (`POST {base}/chat/completions`), for the text
agent: one JSON request, one JSON answer, on a shared aiohttp session.

Why not the `openai` SDK here: measured on the messaging benchmark, building and
validating its typed request (tool schemas included) cost about 2.5 ms of CPU per
completion, more than everything else a WhatsApp exchange does together. Any
OpenAI-compatible server works, as with the SDK. A connection failure, 429 or 5xx is
retried once after a short pause; anything else is an error at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)
RETRY_PAUSE_S = 0.5


class ChatError(RuntimeError):
    """The provider failed or refused; `status` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"chat completion failed ({status or 'no answer'}): {detail}"[:300])
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Completion:
    message: dict[str, Any]  # role, content and tool_calls as the API returns them
    usage: dict[str, int] | None  # prompt_tokens, completion_tokens; None if not reported


def _parse(status: int, body: bytes) -> Completion:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ChatError(status, "the answer is not JSON") from exc
    if status >= 300 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise ChatError(status, str(message or f"HTTP {status}"))
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
            or not isinstance(choices[0].get("message"), dict):
        raise ChatError(status, "the completion has no choices")
    usage = doc.get("usage")
    counts = None
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        counts = {"prompt_tokens": usage["prompt_tokens"],
                  "completion_tokens": int(usage.get("completion_tokens") or 0)}
    return Completion(choices[0]["message"], counts)


class ChatClient:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, api_key: str) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}",
                        "Content-Type": "application/json"}

    async def complete(self, request: dict[str, Any]) -> Completion:
        body = orjson.dumps(request)
        for attempt in (1, 2):
            try:
                async with self.http.post(self.url, data=body, headers=self.headers,
                                          timeout=TIMEOUT) as response:
                    return _parse(response.status, await response.read())
            except ChatError as exc:
                failure = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = ChatError(0, f"{type(exc).__name__}: {exc}")
            if not failure.retryable or attempt == 2:
                raise failure
            await asyncio.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

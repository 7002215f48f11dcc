"""OpenAI chat completions emulator: `POST /v1/chat/completions`, streaming (SSE) or not,
with tool calls in OpenAI's delta format and usage in the last chunk when asked."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from load.emulators.script import Reply, decide
from load.emulators.tokens import count_tokens, prompt_tokens


@dataclass
class ChatTiming:
    ttfb_ms: float = 20.0  # time to the first token
    tokens_per_s: float = 200.0  # 0: as fast as possible


@dataclass
class ChatState:
    timing: ChatTiming = field(default_factory=ChatTiming)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer next, in order
    usage_sent: list[dict[str, int]] = field(default_factory=list)  # usage the client got
    # Of those, the streamed completions' (the voice agent; not the summaries and chats).
    streamed_usage_sent: list[dict[str, int]] = field(default_factory=list)


CHAT = web.AppKey("chat_emulator", ChatState)


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": None}},
                             status=status)


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None) -> bytes:
    body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def _stream(request: web.Request, state: ChatState, reply: Reply, base: dict[str, Any],
                  usage: dict[str, int], include_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(state.timing.ttfb_ms / 1000)
    pause = 1 / state.timing.tokens_per_s if state.timing.tokens_per_s > 0 else 0
    await response.write(_chunk(base, {"role": "assistant", "content": ""}, None))
    if reply.tool:
        call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": reply.tool, "arguments": ""}}
        await response.write(_chunk(base, {"tool_calls": [call]}, None))
        arguments = orjson.dumps(reply.arguments or {}).decode()
        for start in range(0, len(arguments), 16):
            fragment = {"index": 0, "function": {"arguments": arguments[start:start + 16]}}
            await response.write(_chunk(base, {"tool_calls": [fragment]}, None))
            await asyncio.sleep(pause)
        await response.write(_chunk(base, {}, "tool_calls"))
    else:
        for word in _words(reply.text):
            await response.write(_chunk(base, {"content": word}, None))
            await asyncio.sleep(pause)
        await response.write(_chunk(base, {}, "stop"))
    if include_usage:
        await response.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage})
                             + b"\n\n")
        state.usage_sent.append(usage)
        state.streamed_usage_sent.append(usage)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[CHAT]
    if not request.headers.get("Authorization", "").removeprefix("Bearer ").strip():
        return _error(401, "You didn't provide an API key.", "invalid_request_error")
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _error(status, "emulated failure", "server_error" if status >= 500 else "rate")
    try:
        body = orjson.loads(await request.read())
        messages = body["messages"]
        assert isinstance(messages, list)
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        return _error(400, "messages is required", "invalid_request_error")
    state.requests.append(body)
    tools = body.get("tools") or []
    offered = {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)}
    reply = decide(messages, {name for name in offered if name})
    completion_text = reply.text or orjson.dumps(reply.arguments or {}).decode()
    usage = {"prompt_tokens": prompt_tokens(messages, tools),
             "completion_tokens": count_tokens(completion_text) + (7 if reply.tool else 0)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model", "emulator")}
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return await _stream(request, state, reply, base, usage, include)
    await asyncio.sleep(state.timing.ttfb_ms / 1000)
    state.usage_sent.append(usage)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool:
        message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                  "function": {"name": reply.tool,
                                               "arguments": orjson.dumps(reply.arguments)
                                               .decode()}}]
    return web.json_response({
        **base, "object": "chat.completion", "usage": usage,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if reply.tool else "stop"}]})


async def chat_log(request: web.Request) -> web.Response:
    """`GET /_emulator/chat/log?since=N`: what the emulator answered to request N onwards
    (the script is deterministic, so each stored request gives its answer again), with the
    last thing the user said, for a load tool in another process to read the agent's
    side of a call."""
    state = request.app[CHAT]
    try:
        since = max(0, int(request.query.get("since", "0")))
    except ValueError:
        return _error(400, "since must be an integer", "invalid_request_error")
    entries = []
    for index, body in enumerate(state.requests[since:], start=since):
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        offered = {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)}
        reply = decide(messages, {name for name in offered if name})
        user = next((m.get("content") for m in reversed(messages)
                     if isinstance(m, dict) and m.get("role") == "user"), None)
        entries.append({"index": index, "user": user if isinstance(user, str) else None,
                        "text": reply.text, "tool": reply.tool, "arguments": reply.arguments})
    return web.json_response({"count": len(state.requests), "entries": entries})


def add_routes(app: web.Application, state: ChatState) -> None:
    app[CHAT] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/_emulator/chat/log", chat_log)

"""The text agent of WhatsApp and SMS: an OpenAI chat completion with the voice agent's
tools, over the customer's remembered conversation.

One `reply` answers one customer message: up to `max_rounds` completions, running the
tools the model asks for in between (`agents.tools.run_tool`: a booking on WhatsApp is a
success event exactly like one on the phone). Usage is reported after every completion
through `report`, which the caller wires to credit control; when it says the credit is
used up, no further completion is asked for. Tokens come from the provider's `usage`;
where a provider reports none, they are counted here (`agents.tokens`: tiktoken, or its
documented approximation offline), so nothing consumed goes unbilled.

A transfer to a human ends the turn with a fixed notice that a person will write back:
the customer is told for certain, whatever the model would have said.

A tool whose record could not be saved answers the model that nothing was saved (it
apologises instead of confirming) and is listed in `AgentReply.tool_failures`, for the
exchange record; `on_tool_failure` lets the gateway count it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from agents.chat_client import ChatClient, ChatError
from agents.tokens import count_tokens, prompt_tokens
from agents.tools import (
    Action,
    BadArguments,
    ToolContext,
    ToolFailure,
    ToolFailureHook,
    parse_arguments,
    run_tool,
    tool_schemas,
)
from metering.agent_configs import AgentConfig
from metering.meters import Meter
from metering.outcomes import Origin, RecordedOutcome

log = logging.getLogger("voicegw.text_agent")

MAX_INPUT_CHARS = 4000
HANDOFF_NOTICE = "Thank you. A person from our team will write back to you here shortly."
_CHANNEL_NOTES = {
    "whatsapp": "You are chatting with a customer on WhatsApp. Write plain text, no markdown.",
    "sms": "You are texting a customer by SMS. Write plain text, no markdown, and keep each "
           "reply under 300 characters: every 160 characters cost the business money.",
}

# Meter names as plain strings: usage goes to JSON (orjson refuses enum keys).
_INPUT, _OUTPUT, _TOOLS = (Meter.CHAT_INPUT_TOKENS.value, Meter.CHAT_OUTPUT_TOKENS.value,
                           Meter.TOOL_CALLS.value)
Message = dict[str, Any]
UsageReport = Callable[[dict[str, int]], Awaitable[bool]]  # True: the credit is used up


class AgentUnavailable(RuntimeError):
    """The LLM provider failed or refused: the message may be retried later."""


@dataclass(frozen=True)
class TextTurn:
    tenant_id: uuid.UUID
    channel: str  # whatsapp | sms
    customer: str
    session_id: str  # the exchange's credit session: tool outcomes point at it
    text: str
    customer_name: str | None = None


@dataclass
class AgentReply:
    text: str
    usage: dict[str, int]
    action: Action = "none"
    outcomes: list[RecordedOutcome] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the exchange, for the history
    counted_by_us: bool = False  # some tokens were counted here, not by the provider
    exhausted: bool = False
    tool_failures: list[ToolFailure] = field(default_factory=list)  # nothing was saved
    resolved: bool = False  # end_call(resolved=true)
    # The tool calls of the exchange for the transcript: name, arguments, result, at.
    tool_log: list[dict[str, Any]] = field(default_factory=list)


def system_prompt(config: AgentConfig, turn: TextTurn) -> str:
    lines = [config.system_prompt, _CHANNEL_NOTES.get(turn.channel, ""),
             f"Answer in the customer's language; when unsure use {config.language}."]
    if turn.customer_name:
        lines.append(f"The customer's profile name is {turn.customer_name[:60]!r}.")
    return "\n\n".join(line for line in lines if line)


class TextAgent:
    def __init__(self, client: ChatClient, model: str, pool: asyncpg.Pool, *,
                 max_rounds: int = 4, max_output_tokens: int = 400,
                 on_tool_failure: ToolFailureHook | None = None) -> None:
        self.client = client
        self.on_tool_failure = on_tool_failure
        self.model = model
        self.pool = pool
        self.max_rounds = max_rounds
        self.max_output_tokens = max_output_tokens

    async def reply(self, turn: TextTurn, config: AgentConfig, history: list[Message],
                    report: UsageReport) -> AgentReply:
        user: Message = {"role": "user", "content": turn.text[:MAX_INPUT_CHARS]}
        prompt: list[Message] = [{"role": "system", "content": system_prompt(config, turn)},
                                 *history, user]
        result = AgentReply("", {_INPUT: 0, _OUTPUT: 0, _TOOLS: 0}, messages=[user])
        tools = tool_schemas(config.tools)
        ctx = ToolContext(self.pool, Origin(turn.tenant_id, turn.session_id, turn.channel,
                                            turn.customer))
        for round_no in range(self.max_rounds):
            last = round_no == self.max_rounds - 1
            message = await self._complete(prompt, tools, last, result)
            result.exhausted = await report(dict(result.usage))
            calls = message.get("tool_calls") or []
            if not calls or last or result.exhausted:
                result.text = str(message.get("content") or "").strip()
                break
            prompt.append(message)
            result.messages.append(message)
            for call in calls:
                prompt.append(await self._run(ctx, call, result))
                result.messages.append(prompt[-1])
            result.exhausted = await report(dict(result.usage))
            if result.action == "transfer":
                result.text = HANDOFF_NOTICE
                break
        if result.text:
            result.messages.append({"role": "assistant", "content": result.text})
        return result

    async def _complete(self, prompt: list[Message], tools: list[dict[str, Any]], last: bool,
                        result: AgentReply) -> Message:
        request: dict[str, Any] = {"model": self.model, "messages": prompt,
                                   "max_tokens": self.max_output_tokens}
        if tools:
            request["tools"] = tools
            request["tool_choice"] = "none" if last else "auto"
        try:
            completion = await self.client.complete(request)
        except ChatError as exc:
            raise AgentUnavailable(str(exc)) from exc
        message = completion.message
        reply: Message = {"role": "assistant", "content": str(message.get("content") or "")}
        calls = [c for c in message.get("tool_calls") or []
                 if isinstance(c, dict) and isinstance(c.get("function"), dict)]
        if calls:
            reply["tool_calls"] = [
                {"id": str(c.get("id", "")), "type": "function",
                 "function": {"name": str(c["function"].get("name", "")),
                              "arguments": str(c["function"].get("arguments") or "")}}
                for c in calls]
        self._add_usage(result, completion.usage, prompt, tools, reply)
        return reply

    @staticmethod
    def _add_usage(result: AgentReply, usage: dict[str, int] | None, prompt: list[Message],
                   tools: list[dict[str, Any]], reply: Message) -> None:
        if usage is not None:
            prompt_used, completion_used = usage["prompt_tokens"], usage["completion_tokens"]
        else:  # the provider did not say: count it ourselves
            result.counted_by_us = True
            prompt_used = prompt_tokens(prompt, tools or None)
            written = str(reply.get("content") or "") + "".join(
                c["function"]["name"] + c["function"]["arguments"]
                for c in reply.get("tool_calls") or [])
            completion_used = count_tokens(written)
        result.usage[_INPUT] += prompt_used
        result.usage[_OUTPUT] += completion_used

    async def _run(self, ctx: ToolContext, call: Message, result: AgentReply) -> Message:
        # The call id given to the tool is its ordinal in this exchange, not the model's
        # random id: an exchange taken over after a crash books the same appointment once.
        ordinal = f"t{result.usage[_TOOLS]}"
        result.usage[_TOOLS] += 1
        function = call.get("function") or {}
        outcome = await run_tool(ctx, str(function.get("name", "")), ordinal,
                                 function.get("arguments"))
        if outcome.outcome is not None:
            result.outcomes.append(outcome.outcome)
        if outcome.failure is not None:
            result.tool_failures.append(outcome.failure)
            if self.on_tool_failure is not None:
                self.on_tool_failure(outcome.failure)
        if outcome.action != "none":
            result.action = outcome.action
        result.resolved = result.resolved or outcome.resolved
        try:
            arguments: Any = parse_arguments(function.get("arguments"))
        except BadArguments:
            arguments = str(function.get("arguments") or "")[:2000]
        result.tool_log.append({"name": str(function.get("name", "")), "arguments": arguments,
                                "result": outcome.content,
                                "at": dt.datetime.now(dt.UTC).isoformat()})
        return {"role": "tool", "tool_call_id": call.get("id", ordinal),
                "content": orjson.dumps(outcome.content).decode()}

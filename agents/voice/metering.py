"""Metering of a call from the side: what the pipeline consumed, as it happens.

`CallUsage` holds the call's cumulative raw units per meter. `LLMUsageMeter` sees the
frames the LLM pushes: provider-reported token usage is taken as is; a response that
ended (interrupted, cancelled, failed) without usage is counted here with tiktoken over
the prompt it was sent and the text it streamed, so nothing consumed goes unbilled.
TTS characters and STT audio are counted where they leave for the vendor
(`agents.voice.services`), which is the exact amount sent even when cut off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    Frame,
    FunctionCallInProgressFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.processors.aggregators.llm_context import LLMContext

from agents.tokens import count_tokens, prompt_tokens
from metering.meters import Meter


@dataclass
class CallUsage:
    """Cumulative raw units of one call; `snapshot` is what the credit session rates."""

    started: float = field(default_factory=time.monotonic)
    stream_ms: int = 0  # the media stream's own clock: the last inbound timestamp
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_tokens: int = 0  # of the above, counted by us (no provider usage)
    tts_characters: int = 0
    stt_ms: int = 0
    tool_calls: int = 0
    turns: int = 0
    ended_at: float | None = None

    def call_ms(self) -> int:
        """Connection time: the stream's clock, or the wall clock when the caller sends
        nothing (a stalled stream still holds the line)."""
        wall = int(((self.ended_at or time.monotonic()) - self.started) * 1000)
        return max(self.stream_ms, wall)

    def snapshot(self) -> dict[str, int]:
        return {
            Meter.CALL_SECONDS.value: self.call_ms(),
            Meter.VOICE_INPUT_TOKENS.value: self.input_tokens,
            Meter.VOICE_OUTPUT_TOKENS.value: self.output_tokens,
            Meter.TTS_CHARACTERS.value: self.tts_characters,
            Meter.STT_SECONDS.value: self.stt_ms,
            Meter.TOOL_CALLS.value: self.tool_calls,
        }


@dataclass
class _Response:
    prompt_tokens: int
    streamed: list[str] = field(default_factory=list)
    reported: bool = False


class LLMUsageMeter:
    """Feeds `CallUsage` from the frames the LLM service pushes, as it pushes them.

    Called from the LLM's own `push_frame` rather than as a pipecat observer: an observer
    gets every frame of every hop through a queue and a task of its own (about a tenth of
    the gateway's CPU per call, measured), and frames seen at push time cannot be dropped
    by an interruption before they are counted."""

    def __init__(self, usage: CallUsage, context: LLMContext, system_prompt: str) -> None:
        self._usage = usage
        self._context = context
        self._system = {"role": "system", "content": system_prompt}
        self._open: _Response | None = None
        self._tool_calls: set[str] = set()  # announced both ways: each counts once

    def on_llm_frame(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self.close_response()
            self._open = _Response(self._prompt_tokens())
        elif isinstance(frame, LLMTextFrame) and self._open is not None:
            self._open.streamed.append(frame.text)
        elif isinstance(frame, FunctionCallInProgressFrame):
            if frame.tool_call_id not in self._tool_calls:
                self._tool_calls.add(frame.tool_call_id)
                self._usage.tool_calls += 1
        elif isinstance(frame, MetricsFrame):
            for item in frame.data:
                if isinstance(item, LLMUsageMetricsData):
                    self._usage.input_tokens += item.value.prompt_tokens
                    self._usage.output_tokens += item.value.completion_tokens
                    if self._open is not None:
                        self._open.reported = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.close_response()

    def on_chunk(self, chunk: Any) -> None:
        """A raw chunk of the LLM's stream (an OpenAI `ChatCompletionChunk`): the name and
        argument fragments of a tool call are counted as they stream, like text is, so a
        response cut off mid-call is billed for them (pipecat pushes a tool call as a
        frame only once the stream has ended)."""
        if self._open is None:
            return
        for choice in getattr(chunk, "choices", None) or ():
            for call in getattr(choice.delta, "tool_calls", None) or ():
                function = call.function
                if function is not None:
                    self._open.streamed.extend(
                        part for part in (function.name, function.arguments) if part)

    def close_response(self) -> None:
        """Counts a response the provider reported no usage for; call at the end too."""
        response, self._open = self._open, None
        if response is None or response.reported:
            return
        completion = count_tokens("".join(response.streamed))
        self._usage.input_tokens += response.prompt_tokens
        self._usage.output_tokens += completion
        self._usage.estimated_tokens += response.prompt_tokens + completion

    def _prompt_tokens(self) -> int:
        messages = [self._system, *(m for m in self._context.get_messages()
                                    if isinstance(m, dict))]
        tools = self._context.tools
        return prompt_tokens(messages, None if tools is None else str(tools))

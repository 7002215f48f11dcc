"""A voice reply cut off while its tool call streams: the call name and the argument
fragments that streamed are billed like interrupted text (agents/voice/metering.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from pipecat.frames.frames import LLMFullResponseStartFrame
from pipecat.processors.aggregators.llm_context import LLMContext

from agents.tokens import count_tokens
from agents.tools import TOOL_SCHEMAS
from agents.voice.metering import CallUsage, LLMUsageMeter
from agents.voice.services import MeteredStream
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators


@pytest.fixture
async def emulators() -> AsyncIterator[RunningEmulators]:
    running = await start_emulators(config=EmulatorConfig(
        chat=ChatState(ChatTiming(ttfb_ms=1, tokens_per_s=0))))
    yield running
    await running.stop()


async def _booking_stream(emulators: RunningEmulators) -> tuple[Any, openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="emulator-key", base_url=emulators.base_urls()["openai"])
    stream = await client.chat.completions.create(
        model="gpt-4.1-mini", stream=True, tools=[TOOL_SCHEMAS["book_appointment"]],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Please book an appointment tomorrow at 3pm"}])
    return stream, client


def _meter() -> tuple[CallUsage, LLMUsageMeter]:
    usage = CallUsage()
    meter = LLMUsageMeter(usage, LLMContext(), "You are a receptionist.")
    meter.on_llm_frame(LLMFullResponseStartFrame())
    return usage, meter


async def test_a_tool_call_cut_off_mid_arguments_bills_what_streamed(
        emulators: RunningEmulators) -> None:
    stream, client = await _booking_stream(emulators)
    usage, meter = _meter()
    metered = MeteredStream(stream, meter)
    chunks = metered.__aiter__()
    streamed: list[str] = []
    async for chunk in chunks:  # the caller barges in after two argument fragments
        for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            streamed += [p for p in (call.function.name, call.function.arguments) if p]
        if len(streamed) == 3:
            break
    await chunks.aclose()  # type: ignore[attr-defined]
    await metered.close()  # as pipecat closes an interrupted completion
    await client.close()
    meter.close_response()  # no usage came: the response is counted by us
    assert streamed[0] == "book_appointment" and len(streamed) == 3
    completion = count_tokens("".join(streamed))
    assert completion > 0
    assert usage.output_tokens == completion
    assert usage.estimated_tokens == usage.input_tokens + completion > completion


async def test_a_tool_call_that_streamed_whole_without_usage_bills_its_arguments(
        emulators: RunningEmulators) -> None:
    stream, client = await _booking_stream(emulators)
    usage, meter = _meter()
    arguments = ""
    metered = MeteredStream(stream, meter)
    async for chunk in metered:
        for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            arguments += call.function.arguments or ""
    await metered.close()
    await client.close()
    meter.close_response()
    assert len(arguments) > 32  # several fragments
    assert usage.output_tokens == count_tokens("book_appointment" + arguments)

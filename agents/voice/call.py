"""One phone call: the pipecat pipeline, its metering loop, its tools, and how it ends.

The pipeline: transport in -> STT -> user turn (VAD + silence timeout) -> LLM with tools
-> TTS -> transport out -> assistant context. Beside it, a metering loop reports the
call's cumulative usage to its credit session every `METER_TICK_S`, and at the moment a
periodic usage record falls due; the session renews the reservation when due, else
records the usage when due (what the sweeper charges if the gateway dies). When a FINAL
grant is used up, the caller is no longer listened to, the agent says the tenant's
goodbye, and the call ends (the gateway hangs up through Twilio). Every way out (caller
hang-up, goodbye, tool, error, shutdown) leaves a `disposition` for the call record; the
gateway settles the session after `run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import asyncpg
import openai
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from agents.tools import TOOL_SCHEMAS, ToolContext, ToolFailure, ToolFailureHook, run_tool
from agents.voice.metering import CallUsage, LLMUsageMeter
from agents.voice.services import VoiceProviders, make_services
from agents.voice.transcript import CallTranscript, TranscriptRecorder
from agents.voice.transport import SAMPLE_RATE, CallChannel, CallTransport, PlayoutClock
from agents.voice.vad import make_vad
from metering.agent_configs import AgentConfig
from metering.control import CreditSession
from metering.outcomes import Origin

log = logging.getLogger("voicegw.call")

METER_TICK_S = 1.0
MIN_METER_SLEEP_S = 0.01
USER_SPEECH_TIMEOUT_S = 0.4
CSAT_QUESTION = ("Before you go: how satisfied were you with this call? Press a key from 1, "
                 "not satisfied, to 5, very satisfied.")
CSAT_WAIT_S = 15.0  # from the question: time to hear it and press a key
CALL_GOODBYE = "Thank you for calling. Goodbye."


class CallControl(Protocol):
    """What the agent may ask of the phone network (implemented by the gateway)."""

    async def hang_up(self) -> None: ...
    async def transfer(self, number: str) -> None: ...


@dataclass(frozen=True)
class CallSetup:
    origin: Origin
    config: AgentConfig
    providers: VoiceProviders
    operator_number: str | None
    csat: bool = False  # ask for a 1-5 keypad rating when the agent ends the call


class VoiceCall:
    def __init__(self, setup: CallSetup, channel: CallChannel, control: CallControl,
                 credit: CreditSession, pool: asyncpg.Pool, http: aiohttp.ClientSession,
                 openai_http: openai.DefaultAsyncHttpxClient, *,
                 on_tool_failure: ToolFailureHook | None = None,
                 on_turn_latency: Callable[[float], None] | None = None) -> None:
        self.setup = setup
        self.tool_failures: list[ToolFailure] = []  # tools whose record was not saved
        self._on_tool_failure = on_tool_failure
        self.usage = CallUsage()
        self.clock = PlayoutClock(on_turn_latency=on_turn_latency)
        self.disposition: str | None = None
        self.credit = credit
        self._control = control
        self._pool = pool
        self._http = http
        self._openai_http = openai_http
        self._listening = True
        self._hang_up_after = False
        self.transport = CallTransport(channel, self.clock)
        self._task: PipelineWorker | None = None
        self._meter: LLMUsageMeter | None = None
        self._context: LLMContext | None = None
        self.transcript = CallTranscript(self.clock)
        self.resolved = False  # end_call(resolved=true)
        self.rating: int | None = None  # the caller's 1-5 keypad answer (CSAT)
        self._awaiting_rating = False
        self._rated = asyncio.Event()
        self._rating_task: asyncio.Task[None] | None = None

    # -- inbound, from the gateway's websocket handler ----------------------------------
    async def feed_audio(self, mulaw: bytes, timestamp_ms: int) -> None:
        self.usage.stream_ms = max(self.usage.stream_ms, timestamp_ms)
        if self._listening:
            await self.transport.input().feed_audio(mulaw)

    async def feed_dtmf(self, digit: str) -> None:
        if self._awaiting_rating:
            if self.rating is None and digit in ("1", "2", "3", "4", "5"):
                self.rating = int(digit)  # once: later keys change nothing
                self._rated.set()
            return
        if self._listening:
            await self.transport.input().feed_dtmf(digit)

    def on_mark(self, name: str) -> None:
        self.clock.on_mark(name)

    async def caller_hung_up(self) -> None:
        """Twilio said `stop` (or the socket closed): end now, settle at once."""
        self._set_disposition("caller_hung_up" if self.clock.first_audio_at else "abandoned")
        await self._cancel()

    async def shut_down(self) -> None:
        self._set_disposition("shutdown")
        await self._cancel()

    def fail(self, disposition: str = "error") -> None:
        self._set_disposition(disposition)

    def _set_disposition(self, disposition: str) -> None:
        if self.disposition is None:
            self.disposition = disposition

    async def _cancel(self) -> None:
        if self._task is not None and not self._task.has_finished():
            await self._task.cancel()

    # -- the call ----------------------------------------------------------------------
    async def run(self) -> None:
        """Runs the call to its end; the caller settles the credit session afterwards."""
        task = self._build()
        metering = asyncio.create_task(self._meter_loop(), name="call-metering")
        try:
            await task.queue_frames([TTSSpeakFrame(self.setup.config.greeting)])
            runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
            await runner.add_workers(task)
            await runner.run()
        except Exception:
            log.exception("call pipeline failed")
            self._set_disposition("error")
        finally:
            metering.cancel()
            await asyncio.gather(metering, return_exceptions=True)
            if self._rating_task is not None:
                self._rating_task.cancel()
                await asyncio.gather(self._rating_task, return_exceptions=True)
            self.transcript.finish()
            if self._meter is not None:
                self._meter.close_response()
            self.usage.ended_at = time.monotonic()
        self._set_disposition("completed")
        if self._hang_up_after:
            await self._hang_up()

    def _build(self) -> PipelineWorker:
        config = self.setup.config
        stt, llm, tts = make_services(self.setup.providers, self.usage, self._http,
                                      self._openai_http,
                                      voice=config.voice, language=config.language,
                                      system_prompt=config.system_prompt,
                                      timer=self.clock.timer)
        # The greeting reaches the context through the assistant aggregator, as spoken.
        context = LLMContext(tools=_tools_schema(config.tools))
        for name in config.tools:
            llm.register_function(name, self._on_tool)
        user = LLMUserAggregatorParams(
            vad_analyzer=make_vad(config.turn_detection, SAMPLE_RATE),
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy()],
                stop=[SpeechTimeoutUserTurnStopStrategy(
                    user_speech_timeout=USER_SPEECH_TIMEOUT_S)]))
        aggregators = LLMContextAggregatorPair(context, user_params=user)
        user_turns = aggregators.user()
        self._context = context
        aggregators.assistant().add_event_handler("on_assistant_turn_stopped",
                                                  self._keep_what_was_heard)

        user_turns.add_event_handler("on_user_turn_stopped", self._count_turn)
        user_turns.add_event_handler("on_user_turn_stopped", self._customer_turn)

        self._meter = llm.meter = LLMUsageMeter(self.usage, context, config.system_prompt)
        pipeline = Pipeline([self.transport.input(), stt, user_turns,
                             DropInputAudio(self.clock), llm,
                             tts, self.transport.output(), TranscriptRecorder(self.transcript),
                             aggregators.assistant()])
        self._task = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE,
                                  audio_out_sample_rate=SAMPLE_RATE, enable_metrics=False,
                                  enable_usage_metrics=True),
            idle_timeout_secs=None, enable_rtvi=False, enable_turn_tracking=False,
            check_dangling_tasks=False)
        return self._task

    async def _keep_what_was_heard(self, _aggregator: Any, message: Any) -> None:
        """A barge-in cut the reply: the context keeps what the caller heard of it, not
        what was sent ahead (the next answer must not build on words never heard)."""
        content = str(getattr(message, "content", "") or "")
        if not getattr(message, "interrupted", False) or not content or self._context is None:
            return
        heard = self.transcript.heard_of(content)
        if heard is None:
            return
        messages = self._context.get_messages()
        for index in range(len(messages) - 1, -1, -1):
            entry = messages[index]
            if isinstance(entry, dict) and entry.get("role") == "assistant":
                if entry.get("content") != content:
                    return  # not the commit this cut is about: leave the context alone
                if heard:
                    entry["content"] = heard
                else:  # nothing of it was heard
                    del messages[index]
                return

    async def _count_turn(self, *_: Any) -> None:
        self.usage.turns += 1

    async def _customer_turn(self, _aggregator: Any, _strategy: Any, message: Any) -> None:
        self.transcript.customer_said(str(getattr(message, "content", None) or ""),
                                      getattr(message, "timestamp", None))

    async def _meter_loop(self) -> None:
        delay = METER_TICK_S
        while True:
            await asyncio.sleep(delay)
            delay = METER_TICK_S
            try:
                exhausted = await self.credit.report(self.usage.snapshot())
            except Exception as exc:  # a Redis blip: the hold is valid for a while yet
                log.warning("metering report failed: %s", exc)
                continue
            # Wake when the next usage record is due, not up to a tick after: the loss on
            # a crash stays within the record interval.
            due_s = self.credit.record_due_in_ms() / 1000
            delay = min(METER_TICK_S, max(due_s, MIN_METER_SLEEP_S))
            if exhausted and self._listening:
                await self.say_goodbye_and_end("out_of_credit")

    async def say_goodbye_and_end(self, disposition: str, text: str | None = None) -> None:
        """Stops listening, says `text` (default: the tenant's goodbye), ends the call."""
        if not self._listening or self._task is None:
            return
        self._listening = False
        self._set_disposition(disposition)
        self._hang_up_after = True
        await self._task.queue_frames([TTSSpeakFrame(text or self.setup.config.goodbye),
                                       EndFrame()])

    async def _ask_rating(self) -> None:
        """CSAT: stop listening, ask for a 1-5 key, then say goodbye and end (after the
        key, or after `CSAT_WAIT_S` without one)."""
        if not self._listening or self._task is None:
            return
        self._listening = False
        self._awaiting_rating = True
        self._set_disposition("completed")
        self._hang_up_after = True
        await self._task.queue_frames([TTSSpeakFrame(CSAT_QUESTION)])
        self._rating_task = asyncio.create_task(self._goodbye_after_rating(),
                                                name="call-csat")

    async def _goodbye_after_rating(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._rated.wait(), CSAT_WAIT_S)
        if self._task is not None:
            text = "Thank you for your rating. Goodbye." if self.rating else CALL_GOODBYE
            await self._task.queue_frames([TTSSpeakFrame(text), EndFrame()])

    async def _hang_up(self) -> None:
        try:
            await self._control.hang_up()
        except Exception as exc:
            log.warning("hang-up through the phone network failed: %s", exc)

    async def _on_tool(self, params: FunctionCallParams) -> None:
        ctx = ToolContext(self._pool, self.setup.origin, self.setup.operator_number)
        result = await run_tool(ctx, params.function_name, params.tool_call_id,
                                dict(params.arguments))
        self.transcript.tool_called(params.function_name, dict(params.arguments),
                                    result.content)
        self.resolved = self.resolved or result.resolved
        if result.failure is not None:
            self.tool_failures.append(result.failure)
            if self._on_tool_failure is not None:
                self._on_tool_failure(result.failure)
        if result.action == "transfer" and result.transfer_to:
            await params.result_callback(result.content)
            await self._transfer(result.transfer_to)
            return
        if result.action == "transfer":  # no operator number: say so, keep helping
            await params.result_callback({"error": "no person is available right now"})
            return
        if result.action == "end":
            await params.result_callback(result.content)
            if self.setup.csat:
                await self._ask_rating()
            else:
                await self.say_goodbye_and_end("completed", CALL_GOODBYE)
            return
        await params.result_callback(result.content)

    async def _transfer(self, number: str) -> None:
        self._listening = False
        self._set_disposition("transferred")
        try:
            await self._control.transfer(number)
        except Exception as exc:
            log.warning("transfer failed: %s", exc)
            self.disposition = None
            self._listening = True
            return
        # Twilio ends the media stream when the call leaves it for the <Dial>; its `stop`
        # cancels the pipeline like a hang-up would, with this disposition kept.

    def record(self) -> dict[str, Any]:
        """What goes into the call record beside the usage and the charges."""
        first_audio_ms = None
        if self.clock.first_audio_at is not None:
            first_audio_ms = int((self.clock.first_audio_at - self.usage.started) * 1000)
        return {"disposition": self.disposition or "completed",
                "first_audio_ms": first_audio_ms, "turns": self.usage.turns,
                "audio_sent_ms": self.clock.sent_ms, "audio_heard_ms": self.clock.heard_ms,
                "barge_ins": self.clock.cleared, "estimated_tokens": self.usage.estimated_tokens,
                "tool_failures": [failure.to_json() for failure in self.tool_failures]}


class DropInputAudio(FrameProcessor):
    """Stops the caller's audio once STT and turn detection have had it: the LLM, TTS,
    output and context processors have no use for it, and each hop costs every 20 ms.
    On the way, tells the clock when the caller's speech ended: the VAD says so
    `stop_secs` of silence after it did, so that much earlier."""

    def __init__(self, clock: PlayoutClock) -> None:
        super().__init__()
        self._clock = clock

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            return
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._clock.caller_stopped(time.monotonic() - frame.stop_secs)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._clock.caller_started()
        await self.push_frame(frame, direction)


def _tools_schema(names: tuple[str, ...]) -> ToolsSchema:
    schemas = []
    for name in names:
        spec = TOOL_SCHEMAS[name]["function"]
        parameters = spec["parameters"]
        schemas.append(FunctionSchema(name=name, description=spec["description"],
                                      properties=parameters["properties"],
                                      required=parameters["required"]))
    return ToolsSchema(standard_tools=schemas)

"""A pipecat transport for one phone call, fed by the gateway's websocket handler.

Inbound: the gateway decodes each media message and calls `CallInput.feed_audio` (mu-law
8 kHz). Outbound: agent audio is converted to mu-law and handed to the `CallChannel` in
20 ms frames, sent as soon as TTS makes them (up to `MAX_AHEAD_S` ahead of the caller):
Twilio buffers and plays at real time, so the audio queued there covers a TTS chunk or
sentence that comes late, and `clear` empties it on barge-in. A mark is sent every `MARK_EVERY_MS`
of audio, so the marks Twilio echoes tell how much the caller actually heard; on barge-in
the channel is told to `clear` and unheard audio is dropped on Twilio's side.
"""

from __future__ import annotations

import asyncio
import audioop  # pipecat itself converts mu-law with it; removed only in Python 3.13
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from agents.voice.timing import TurnTimer

SAMPLE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of mu-law at 8 kHz: what Twilio sends and expects
MARK_EVERY_MS = 200
# Agent audio goes to Twilio as soon as TTS makes it, up to this far ahead of what the
# caller is hearing: Twilio plays what it buffered at real time, so a TTS chunk or a
# sentence that comes late is absorbed by the audio already queued there instead of
# being heard as a gap; on barge-in `clear` drops it all at once, and the marks still
# say what was played.
MAX_AHEAD_S = 4.0
# TTS streams at about real time, so without slack every chunk that comes a few ms late
# is heard as a gap (measured: 260-350 ms of silence per minute of speech at 0, none at
# 40 ms on a loaded machine; BENCHMARKS.md): a reply's audio starts this much late.
PREROLL_S = 0.04
# Caller audio enters the pipeline 40 ms at a time: every frame costs a hop through each
# processor before turn detection, so two of Twilio's 20 ms frames per frame halve that,
# for at most 20 ms later speech detection (measured in BENCHMARKS.md).
INBOUND_BATCH_BYTES = 2 * FRAME_BYTES
# Once the caller has been silent for QUIET_AFTER_MS (long after the VAD's 0.2 s stop and
# any turn it ends), silence enters 200 ms at a time: most of a call's inbound audio is
# the caller listening, and every hop costs per frame. The first sound flushes what is
# held at once, so speech (and barge-in) is detected exactly as soon as before.
QUIET_AFTER_MS = 640
QUIET_BATCH_MS = 200
QUIET_PEAK = 100  # loudest 16-bit sample of silence (-50 dBFS)
# Agent audio crosses pipecat's output queue (and the processors after it) 100 ms at a
# time, not its default 40: each chunk costs two `wait_for`s, a queue hop and two
# processors. Measured at 12 calls, alternated: 43.4 and 45.5 ms of CPU per call-second
# at 40 ms, 41.1 and 42.6 at 100, latency alike (docs/voice.md, "Capacity"). Audio is
# sent ahead of the caller, so a chunk's size delays nothing the caller hears; the end
# of each utterance is padded to a chunk (up to 100 ms of silence between sentences).
OUTBOUND_CHUNK_MS = 100


class CallChannel(Protocol):
    """What the transport needs from the media stream (implemented by the gateway)."""

    async def send_audio(self, mulaw: bytes) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def send_clear(self) -> None: ...


@dataclass
class PlayoutClock:
    """What was sent to the caller and what Twilio says was played; and each turn's
    latency: from the end of the caller's speech to the agent's first audio after it."""

    sent_ms: int = 0
    heard_ms: int = 0
    first_audio_at: float | None = None  # monotonic time of the agent's first audio
    cleared: int = 0
    heard_at_clear: int = 0  # heard_ms when the last clear was sent (a barge-in)
    speech_ended_at: float | None = None  # caller's speech not answered yet (monotonic)
    on_turn_latency: Callable[[float], None] | None = None
    timer: TurnTimer = field(default_factory=TurnTimer)

    def caller_started(self) -> None:
        self.speech_ended_at = None  # still speaking: the turn is not over
        self.timer.cancel()

    def caller_stopped(self, ended_at: float) -> None:
        self.speech_ended_at = ended_at
        self.timer.begin()

    def agent_audio(self, now: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.timer.first_frame_out()
        if self.speech_ended_at is not None:
            latency, self.speech_ended_at = now - self.speech_ended_at, None
            if self.on_turn_latency is not None:
                self.on_turn_latency(latency)

    def mark_name(self) -> str:
        return f"a{self.sent_ms}"

    def on_mark(self, name: str) -> None:
        if name.startswith("a") and name[1:].isdigit():
            self.heard_ms = max(self.heard_ms, min(int(name[1:]), self.sent_ms))


class CallInput(BaseInputTransport):
    def __init__(self, params: TransportParams, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._ready = asyncio.Event()
        self._inbound = b""
        self._quiet_ms = 0
        self._held = b""

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        self._ready.set()

    async def feed_audio(self, mulaw: bytes) -> None:
        if not self._ready.is_set():
            return  # audio before the pipeline started: nobody could hear it yet
        self._inbound += mulaw
        if len(self._inbound) < INBOUND_BATCH_BYTES:
            return
        pcm, self._inbound = audioop.ulaw2lin(self._inbound, 2), b""
        if audioop.max(pcm, 2) < QUIET_PEAK:
            self._quiet_ms += len(pcm) * 1000 // (2 * SAMPLE_RATE)
            if self._quiet_ms > QUIET_AFTER_MS:
                self._held += pcm
                if len(self._held) * 1000 // (2 * SAMPLE_RATE) < QUIET_BATCH_MS:
                    return
                pcm, self._held = self._held, b""
        else:
            self._quiet_ms = 0
            if self._held:
                pcm, self._held = self._held + pcm, b""
        await self.push_audio_frame(InputAudioRawFrame(pcm, SAMPLE_RATE, 1))

    async def feed_dtmf(self, digit: str) -> None:
        try:
            entry = KeypadEntry(digit)
        except ValueError:
            return  # not a key pipecat knows: nothing to tell the agent
        await self.push_frame(InputDTMFFrame(button=entry))


class CallOutput(BaseOutputTransport):
    def __init__(self, params: TransportParams, channel: CallChannel, clock: PlayoutClock,
                 **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._channel = channel
        self._clock = clock
        self._pending = b""
        self._since_mark_ms = 0
        self._closed = False
        self._playing_until = 0.0  # when the audio sent so far ends at the caller's side

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._flush_mark()

    async def cancel(self, frame: CancelFrame) -> None:
        self._closed = True
        await super().cancel(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._pending = b""
            # Only audio still playing at the caller's side makes this a barge-in; a turn
            # that starts after the agent finished has nothing to clear.
            if time.monotonic() < self._playing_until:
                self._playing_until = 0.0
                self._clock.heard_at_clear = self._clock.heard_ms
                self._clock.cleared += 1
                await self._channel.send_clear()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._closed:
            return False
        self._pending += audioop.lin2ulaw(frame.audio, 2)
        while len(self._pending) >= FRAME_BYTES:
            chunk, self._pending = self._pending[:FRAME_BYTES], self._pending[FRAME_BYTES:]
            await self._send(chunk)
        return True

    async def _send(self, chunk: bytes) -> None:
        now = time.monotonic()
        if now >= self._playing_until and PREROLL_S:
            # Nothing is playing at the caller's: this frame starts the audio there, and
            # the caller's playout runs at real time from it. Starting it PREROLL_S late
            # gives every later chunk that much slack (TTS streams at about real time).
            await asyncio.sleep(PREROLL_S)
            now = time.monotonic()
        self._clock.agent_audio(now)
        self._playing_until = max(self._playing_until, now) + 0.02
        await self._channel.send_audio(chunk)
        self._clock.sent_ms += 20
        self._since_mark_ms += 20
        if self._since_mark_ms >= MARK_EVERY_MS:
            await self._flush_mark()
        ahead = self._playing_until - time.monotonic()
        if ahead > MAX_AHEAD_S:  # a TTS far faster than real time: hold it back here
            await asyncio.sleep(ahead - MAX_AHEAD_S)

    async def _flush_mark(self) -> None:
        if self._since_mark_ms:
            self._since_mark_ms = 0
            await self._channel.send_mark(self._clock.mark_name())


class CallTransport(BaseTransport):
    """Input and output of one call; the gateway owns the websocket itself."""

    def __init__(self, channel: CallChannel, clock: PlayoutClock) -> None:
        super().__init__(name="call-transport")
        params = TransportParams(audio_in_enabled=True, audio_out_enabled=True,
                                 audio_in_sample_rate=SAMPLE_RATE,
                                 audio_out_sample_rate=SAMPLE_RATE,
                                 audio_out_10ms_chunks=OUTBOUND_CHUNK_MS // 10)
        self._input = CallInput(params, name="call-input")
        self._output = CallOutput(params, channel, clock, name="call-output")

    def input(self) -> CallInput:
        return self._input

    def output(self) -> CallOutput:
        return self._output

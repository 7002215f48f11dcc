"""A simulated phone caller that behaves like Twilio towards the gateway.

It asks `/twilio/voice` for TwiML with a valid signature, opens the media stream named
there, sends 20 ms mu-law frames on a real-time clock (silence, or a scripted utterance
rendered by `load.speech` after registering its words with the STT emulator), plays the
agent's audio on the same clock (recording it), echoes each mark when the audio before it
has played, drops unplayed audio on `clear`, and hangs up with `stop`.

Turn latency is measured as Twilio's side sees it: from the end of an utterance to the
first agent audio that arrives after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from load import speech, twilio_wire

FRAME_MS = 20
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES  # mu-law silence


@dataclass
class CallScript:
    utterances: list[str] = field(default_factory=list)
    agent_silence_s: float = 0.8  # how long the agent must be quiet before the caller speaks
    barge_in_at: int | None = None  # this utterance is said while the agent talks...
    barge_in_after_s: float = 0.5  # ...this long after the agent started talking
    hang_up_after_s: float | None = None  # hang up this long after the stream started
    max_call_s: float = 60.0
    hang_up_when_done: bool = True  # after the last reply, hang up (else wait for the agent)
    keypad: str | None = None  # pressed once after the last reply (a rating, a menu choice)


@dataclass
class CallResult:
    call_sid: str
    refused_with: list[str] = field(default_factory=list)  # <Say> texts of a refusal
    said: list[str] = field(default_factory=list)
    first_audio_ms: float | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)
    agent_audio_ms: int = 0
    marks_echoed: int = 0
    clears: int = 0
    frame_gaps_ms: list[float] = field(default_factory=list)  # between agent media frames
    ended_by: str = ""  # caller | gateway
    close_code: int | None = None


@dataclass
class Endpoint:
    gateway_url: str  # where the gateway listens, e.g. http://127.0.0.1:8080
    public_url: str  # what the gateway believes it is (VOICEGW_PUBLIC_URL): signed URLs
    auth_token: str
    account_sid: str
    stt_emulator_url: str | None = None  # where to register the caller's phrases


class _Line:
    """The audio on the line, both ways, on one 20 ms clock."""

    def __init__(self) -> None:
        self.speaking: deque[bytes] = deque()
        self.playing: deque[bytes | str] = deque()  # agent audio frames and mark names
        self.recorded = bytearray()
        self.last_agent_audio = 0.0
        self.agent_started: float | None = None

    def say(self, mulaw: bytes) -> None:
        for start in range(0, len(mulaw), FRAME_BYTES):
            self.speaking.append(mulaw[start:start + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff"))

    def next_outgoing(self) -> bytes:
        return self.speaking.popleft() if self.speaking else SILENCE

    def play_one(self) -> list[str]:
        """Plays 20 ms of agent audio; returns the marks passed on the way."""
        passed: list[str] = []
        while self.playing and isinstance(self.playing[0], str):
            passed.append(str(self.playing.popleft()))
        if self.playing:
            frame = self.playing.popleft()
            assert isinstance(frame, bytes)
            self.recorded += frame
        while self.playing and isinstance(self.playing[0], str):
            passed.append(str(self.playing.popleft()))
        return passed

    def clear(self) -> list[str]:
        marks = [m for m in self.playing if isinstance(m, str)]
        self.playing.clear()
        return marks

    @property
    def agent_quiet_for(self) -> float:
        if any(isinstance(x, bytes) for x in self.playing):
            return 0.0
        return time.monotonic() - self.last_agent_audio if self.last_agent_audio else 0.0


class SimulatedCall:
    def __init__(self, endpoint: Endpoint, to: str, caller: str, script: CallScript,
                 http: aiohttp.ClientSession) -> None:
        self.endpoint, self.to, self.caller, self.script, self.http = (endpoint, to, caller,
                                                                      script, http)
        self.result = CallResult("CA" + uuid.uuid4().hex)
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.line = _Line()
        self._seq = 1
        self._waiting_since: float | None = None  # end of the caller's last utterance
        self._t0 = 0.0
        self._replied_since_last = False
        self._keyed = False
        self.started = False  # the media stream is open: the call is placed and billed

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def fetch_twiml(self) -> twilio_wire.Twiml:
        params = {"CallSid": self.result.call_sid, "AccountSid": self.endpoint.account_sid,
                  "From": self.caller, "To": self.to, "CallStatus": "ringing",
                  "Direction": "inbound", "ApiVersion": "2010-04-01"}
        signed = self.endpoint.public_url.rstrip("/") + "/twilio/voice"
        headers = {"X-Twilio-Signature": twilio_wire.signature(signed, params,
                                                               self.endpoint.auth_token)}
        async with self.http.post(self.endpoint.gateway_url.rstrip("/") + "/twilio/voice",
                                  data=params, headers=headers) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"/twilio/voice answered {response.status}: {text[:200]}")
        return twilio_wire.parse_twiml(text)

    async def run(self) -> CallResult:
        twiml = await self.fetch_twiml()
        if twiml.stream_url is None:
            self.result.refused_with = twiml.said
            return self.result
        path = "/" + twiml.stream_url.split("://", 1)[1].split("/", 1)[1]
        url = self.endpoint.gateway_url.rstrip("/") + path
        async with self.http.ws_connect(url, max_msg_size=1 << 20) as ws:
            await ws.send_str(twilio_wire.connected())
            await ws.send_str(twilio_wire.start(self.stream_sid, self.result.call_sid,
                                                self.endpoint.account_sid, twiml.parameters))
            self._t0 = time.monotonic()
            self.started = True
            receiver = asyncio.create_task(self._receive(ws))
            try:
                await self._talk(ws, receiver)
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
            self.result.close_code = ws.close_code
        return self.result

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        last: float | None = None
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = twilio_wire.parse_outbound(msg.data)
            now = time.monotonic()
            if message.event == "media":
                # A message may carry several 20 ms frames (stock pipecat sends 40 ms):
                # each is played, counted and timed as a frame of its own.
                frames = [message.audio[i:i + FRAME_BYTES]
                          for i in range(0, len(message.audio), FRAME_BYTES)] or [b""]
                if last is not None:
                    self.result.frame_gaps_ms.append((now - last) * 1000)
                self.result.frame_gaps_ms.extend([0.0] * (len(frames) - 1))
                last = now
                self._on_agent_audio(now)
                self.line.playing.extend(frames)
                self.result.agent_audio_ms += FRAME_MS * len(frames)
            elif message.event == "mark":
                self.line.playing.append(message.name)
            elif message.event == "clear":
                self.result.clears += 1
                last = None
                for name in self.line.clear():
                    await self._echo_mark(ws, name)

    def _on_agent_audio(self, now: float) -> None:
        if self.result.first_audio_ms is None:
            self.result.first_audio_ms = (now - self._t0) * 1000
        if self._waiting_since is not None and now >= self._waiting_since:
            self._replied_since_last = True
            self.result.turn_latencies_ms.append((now - self._waiting_since) * 1000)
            self._waiting_since = None
        if self.line.agent_started is None or self.line.agent_quiet_for > 0.2:
            self.line.agent_started = now
        self.line.last_agent_audio = now

    async def _echo_mark(self, ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
        self.result.marks_echoed += 1
        if not ws.closed:
            await ws.send_str(twilio_wire.mark(self.stream_sid, self._next_seq(), name))

    async def _talk(self, ws: aiohttp.ClientWebSocketResponse,
                    receiver: asyncio.Task[None]) -> None:
        pending = list(self.script.utterances)
        tick = 0
        while not receiver.done():
            elapsed = time.monotonic() - self._t0
            if elapsed > self.script.max_call_s or (
                    self.script.hang_up_after_s is not None
                    and elapsed >= self.script.hang_up_after_s):
                break
            if not self.line.speaking:
                if self._waiting_since is None and pending and self._may_speak():
                    await self._speak(pending.pop(0))
                elif (self.script.keypad and not self._keyed and not pending
                      and self._waiting_since is None and self.result.said
                      and self.line.agent_quiet_for >= self.script.agent_silence_s):
                    self._keyed = True
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(twilio_wire.dtmf(self.stream_sid, self._next_seq(),
                                                           self.script.keypad))
                elif (not pending and self._waiting_since is None and self.script.hang_up_when_done
                      and self.result.said and self.line.agent_quiet_for
                      >= self.script.agent_silence_s):
                    break
            await self._send_frame(ws, tick)
            tick += 1
            delay = self._t0 + tick * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if receiver.done():
            self.result.ended_by = "gateway"
            return
        self.result.ended_by = "caller"
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(twilio_wire.stop(self.stream_sid, self._next_seq(),
                                               self.result.call_sid, self.endpoint.account_sid))
            await ws.close()

    def _may_speak(self) -> bool:
        if self.script.barge_in_at == len(self.result.said):
            if self.line.agent_started is None or self.line.agent_quiet_for > 0.0:
                return False
            talking = time.monotonic() - self.line.agent_started
            return talking >= self.script.barge_in_after_s and (
                len(self.result.said) == 0 or self._replied_since_last)
        return (self.result.first_audio_ms is not None
                and self.line.agent_quiet_for >= self.script.agent_silence_s)

    async def _speak(self, text: str) -> None:
        code = await self._register(text)
        pcm = speech.render_utterance(code, speech.utterance_seconds(text))
        self.line.say(speech.ulaw_encode(pcm))
        self.result.said.append(text)
        # Latency counts from the end of the utterance: when its last frame goes out.
        seconds = len(self.line.speaking) * FRAME_MS / 1000
        self._waiting_since = time.monotonic() + seconds
        self._replied_since_last = False

    async def _register(self, text: str) -> int:
        url = self.endpoint.stt_emulator_url
        if url is None:
            return speech.phrase_code(text)
        async with self.http.post(url.rstrip("/") + "/_emulator/stt/phrases",
                                  json={"text": text}) as response:
            response.raise_for_status()
            return int((await response.json())["code"])

    async def _send_frame(self, ws: aiohttp.ClientWebSocketResponse, tick: int) -> None:
        for name in self.line.play_one():
            await self._echo_mark(ws, name)
        if ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(twilio_wire.media(self.stream_sid, self._next_seq(), tick + 1,
                                                tick * FRAME_MS, self.line.next_outgoing()))

    def save_wav(self, path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(speech.ulaw_decode(bytes(self.line.recorded)))

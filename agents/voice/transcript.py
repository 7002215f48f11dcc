"""A phone call's transcript as it happens: the caller's turns, the agent's turns with
what the caller actually heard of an interrupted one, and the tool calls.

`TranscriptRecorder` sits after the output transport. Each word the TTS speaks passes it
(a `TTSTextFrame`) as its audio is sent: the recorder notes the word with the audio
position it starts at (`PlayoutClock.sent_ms`). An agent turn ends when the agent
stops speaking; on a barge-in (`InterruptionFrame`) it ends `interrupted`, and its
`heard_text` is the words whose audio starts before what Twilio's marks say the caller
heard (`PlayoutClock.heard_ms`, taken when the audio was cleared: the marks Twilio
echoes for a cleared buffer say nothing about hearing). The caller's turns come from the
user aggregator's `on_user_turn_stopped` (what STT understood).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from agents.voice.transport import PlayoutClock


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(at: dt.datetime) -> str:
    return at.isoformat()


@dataclass
class _AgentTurn:
    started_at: dt.datetime
    cleared_before: int  # the clock's clears when the turn started
    words: list[tuple[int, str, bool]] = field(default_factory=list)  # (position, text, spaced)

    def text(self, heard_before_ms: int | None = None) -> str:
        out = ""
        for position, word, spaced in self.words:
            if heard_before_ms is not None and position >= heard_before_ms:
                break
            out += word if spaced or not out else " " + word
        return out.strip()


@dataclass
class CallTranscript:
    """The turns and tool calls of one call, in order (JSON-ready dicts)."""

    clock: PlayoutClock
    turns: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    _agent: _AgentTurn | None = None

    # -- the agent --------------------------------------------------------------------
    def agent_word(self, text: str, spaced: bool) -> None:
        if self._agent is None:
            self._agent = _AgentTurn(_now(), self.clock.cleared)
        self._agent.words.append((self.clock.sent_ms, text, spaced))

    def agent_stopped(self, *, interrupted: bool) -> None:
        turn, self._agent = self._agent, None
        if turn is None or not turn.words:
            return
        # Interrupted only when audio still playing was cut off (the output cleared it).
        interrupted = interrupted and self.clock.cleared > turn.cleared_before
        text = turn.text()
        heard = turn.text(self.clock.heard_at_clear) if interrupted else None
        self.turns.append({"role": "agent", "text": text, "started_at": _iso(turn.started_at),
                           "ended_at": _iso(_now()), "interrupted": interrupted,
                           "heard_text": heard})

    # -- the caller -------------------------------------------------------------------
    def customer_said(self, text: str, started_at: str | None) -> None:
        text = " ".join(text.split())
        if not text:
            return
        ended = _now()
        try:
            started = dt.datetime.fromisoformat(started_at) if started_at else ended
        except ValueError:
            started = ended
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        self.turns.append({"role": "customer", "text": text, "started_at": _iso(started),
                           "ended_at": _iso(ended), "interrupted": False, "heard_text": None})

    def tool_called(self, name: str, arguments: dict[str, Any], result: Any) -> None:
        self.tool_calls.append({"name": name, "arguments": arguments, "result": result,
                                "at": _iso(_now())})

    def finish(self) -> None:
        """The call ended: an agent turn still open ends here (cut off if not all heard)."""
        if self._agent is not None:
            self.agent_stopped(interrupted=self.clock.heard_ms < self.clock.sent_ms)

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.turns, key=lambda t: t["started_at"])


class TranscriptRecorder(FrameProcessor):
    """Feeds `CallTranscript` from the frames after the output transport."""

    def __init__(self, transcript: CallTranscript) -> None:
        super().__init__()
        self._transcript = transcript

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, TTSTextFrame) and frame.text:
                self._transcript.agent_word(frame.text, frame.includes_inter_frame_spaces)
            elif isinstance(frame, InterruptionFrame):
                self._transcript.agent_stopped(interrupted=True)
            elif isinstance(frame, BotStoppedSpeakingFrame):
                self._transcript.agent_stopped(interrupted=False)
            elif isinstance(frame, EndFrame | CancelFrame):
                self._transcript.finish()
        await self.push_frame(frame, direction)

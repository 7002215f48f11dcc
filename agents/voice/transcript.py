"""A phone call's transcript as it happens: the caller's turns, the agent's turns with
what the caller actually heard of an interrupted one, and the tool calls.

`TranscriptRecorder` sits after the output transport. Each word the TTS speaks passes it
(a `TTSTextFrame`) as its audio is sent: the recorder notes the word with the audio
position it starts at (`PlayoutClock.sent_ms`). An agent turn is everything the agent
says between two turns of the caller; it ends where its audio ends. On a barge-in
(`InterruptionFrame`) it ends `interrupted`, and its `heard_text` is the words whose
audio starts before what Twilio's marks say the caller heard (`PlayoutClock.heard_ms`,
taken when the audio was cleared: the marks Twilio echoes for a cleared buffer say
nothing about hearing). A call cut off (the caller hung up) ends a turn still open
`interrupted` when its later words were not heard yet. The caller's turns come from the
user aggregator's `on_user_turn_stopped` (what STT understood).

The agent's context must hold the same: pipecat's assistant aggregator commits what was
*sent* of an interrupted reply (audio goes out up to seconds ahead of the caller), so
`heard_of` tells `VoiceCall` what the caller heard of that commit, and the call puts that
in the context instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
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
    start_ms: int  # the audio position of its first word
    words: list[tuple[int, str, bool]] = field(default_factory=list)  # (position, text, spaced)

    def text(self, heard_before_ms: int | None = None, last_words: int | None = None) -> str:
        """Its words (the last `last_words` of them), up to the first not heard."""
        out = ""
        words = self.words
        if last_words is not None:  # counted as split() counts them: a frame may hold two
            start, counted = len(words), 0
            while start > 0 and counted < last_words:
                start -= 1
                counted += len(words[start][1].split())
            words = words[start:]
        for position, word, spaced in words:
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
    _cut: tuple[_AgentTurn, int] | None = None  # the turn a barge-in cut last, and where

    # -- the agent --------------------------------------------------------------------
    def agent_word(self, text: str, spaced: bool) -> None:
        if self._agent is None:
            self._agent = _AgentTurn(_now(), self.clock.cleared, self.clock.sent_ms)
        self._agent.words.append((self.clock.sent_ms, text, spaced))

    def agent_stopped(self, *, interrupted: bool) -> None:
        """The agent's turn ended: spoken to its end, or cut off by a barge-in (only when
        audio still playing was cleared; what was heard is as the clear found it)."""
        turn = self._agent
        if turn is not None and interrupted and self.clock.cleared > turn.cleared_before:
            self._close(cut_at_ms=self.clock.heard_at_clear)
        else:
            self._close(cut_at_ms=None)

    def _close(self, cut_at_ms: int | None) -> None:
        turn, self._agent = self._agent, None
        if turn is None or not turn.words:
            return
        self._cut = None if cut_at_ms is None else (turn, cut_at_ms)
        # It ended where its audio did (sent, or heard up to the cut), not when it was closed.
        played_ms = max((self.clock.sent_ms if cut_at_ms is None else cut_at_ms)
                        - turn.start_ms, 0)
        ended = turn.started_at + dt.timedelta(milliseconds=played_ms)
        self.turns.append({"role": "agent", "text": turn.text(),
                           "started_at": _iso(turn.started_at), "ended_at": _iso(ended),
                           "interrupted": cut_at_ms is not None,
                           "heard_text": None if cut_at_ms is None else turn.text(cut_at_ms)})

    # -- the caller -------------------------------------------------------------------
    def customer_said(self, text: str, started_at: str | None) -> None:
        """The caller's turn, as STT understood it; it ends the agent's turn before it
        (everything the agent said between two caller turns is one turn)."""
        self.agent_stopped(interrupted=False)
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
        """The call was cut (a hang-up, a cancel): a turn still open ends here, interrupted
        when its audio was not all heard."""
        turn = self._agent
        if turn is None:
            return
        last_word_at = turn.words[-1][0] if turn.words else 0
        heard = self.clock.heard_ms
        self._close(cut_at_ms=heard if heard <= last_word_at else None)

    def heard_of(self, committed: str) -> str | None:
        """What the caller heard of `committed`, the text the assistant aggregator put in
        the context for the reply a barge-in just cut (the last words of the turn: a turn
        may span several commits, around a tool call); None when no cut is pending."""
        if self._cut is None:
            return None
        (turn, cut_at_ms), self._cut = self._cut, None
        return turn.text(cut_at_ms, last_words=len(committed.split()))

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
            elif isinstance(frame, EndFrame):  # the goodbye was spoken to its end
                self._transcript.agent_stopped(interrupted=False)
            elif isinstance(frame, CancelFrame):
                self._transcript.finish()
        await self.push_frame(frame, direction)

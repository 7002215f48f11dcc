"""Where a turn's latency goes, from the gateway's side: one log line per answered turn.

The stages, each stamped once per turn with the wall clock (so a load tool in another
process can line them up with the end of its caller's utterance):

| stamp | when |
| --- | --- |
| `vad_stop` | the VAD said the caller stopped (its `stop_secs` of silence after the speech) |
| `stt_request` | the caller's audio left for the STT vendor |
| `stt_answer` | the transcription came back |
| `llm_request` | the LLM was asked (the user turn ended: speech timeout and transcript) |
| `tts_request` | the first text of the reply left for TTS (its first clause) |
| `tts_first_byte` | the TTS vendor's first audio of the reply |
| `first_frame_out` | the reply's first 20 ms frame went to the caller |

A turn begins at `vad_stop` (a later stop before the reply restarts it: the caller went
on speaking) and ends with its first frame out, when the line
`{"msg": "turn timing", "event": "turn_timing", "timing": {stage: unix seconds}}` is
logged (INFO). A turn the caller abandons (speaks again first) is dropped. Cost: a few
attribute writes per stage and one log line per turn.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("voicegw.call.timing")

STAGES = ("vad_stop", "stt_request", "stt_answer", "llm_request", "tts_request",
          "tts_first_byte", "first_frame_out")


class TurnTimer:
    def __init__(self) -> None:
        self._stamps: dict[str, float] | None = None

    def begin(self) -> None:
        """The VAD said the caller stopped speaking: a turn may follow. (The STT hears of
        the stop on its own path and may have stamped its request already.)"""
        stamps = self._stamps
        if stamps is not None and "vad_stop" not in stamps:
            stamps["vad_stop"] = min(stamps.values(), default=time.time())
        else:
            self._stamps = {"vad_stop": time.time()}

    def cancel(self) -> None:
        """The caller spoke again before any reply: the turn so far is void."""
        if self._stamps is not None and "llm_request" not in self._stamps:
            self._stamps = None

    def stamp(self, stage: str) -> None:
        """Records `stage` for the turn in progress, once (the first time wins)."""
        stamps = self._stamps
        if stamps is None:
            if stage == "stt_request":  # before `begin`: the STT heard of the stop first
                self._stamps = {stage: time.time()}
            return
        if stage not in stamps:
            stamps[stage] = time.time()

    def first_frame_out(self) -> None:
        stamps = self._stamps
        if stamps is None or "tts_first_byte" not in stamps:
            return  # the greeting, or audio left from before the turn
        self._stamps = None
        stamps["first_frame_out"] = time.time()
        log.info("turn timing", extra={"event": "turn_timing", "timing": stamps})

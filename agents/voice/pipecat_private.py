"""Every use of pipecat's private API in the call path, in one place.

pipecat is pinned exactly (pyproject.toml) because it breaks APIs between minors; what is
here leans on attributes it does not promise to keep. `PINNED` is the version this was
written against, and tests/agents/test_pipecat_private.py fails when the installed
pipecat is another one or when an attribute used here is gone: read this module again
before moving the pin.

- `SharedSileroVADAnalyzer` sets up what `SileroVADAnalyzer.__init__` sets up (`_model`,
  `_windows_since_reset`, `_low_confidence_windows`) on one ONNX session for the whole
  process, runs `_run_analyzer` inline, and skips the model and the volume meter
  (`_get_smoothed_volume`) on windows of long silence (agents/voice/vad.py says why).
- `FirstClauseAggregator` subclasses `SimpleTextAggregator` and writes its `_text`
  buffer; `use_first_clause_aggregator` replaces a TTS service's `_text_aggregator`.
  Why: pipecat sends a reply's first TTS request at the end of its first *sentence*, and
  only once the token after the full stop arrived (its lookahead). The first clause
  (a comma, semicolon, colon, or a stop after an ordinary word) is enough to start
  speaking, and every ms before the first TTS request is latency the caller hears.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import numpy as np
import onnxruntime
import pipecat
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

PINNED = "1.14.0"
PRIVATE_ATTRIBUTES = {
    SimpleTextAggregator: ("_text",),
    TTSService: ("_text_aggregator",),
    SileroVADAnalyzer: ("_model", "_windows_since_reset", "_low_confidence_windows"),
    SileroOnnxModel: ("session",),
    VADAnalyzer: ("_run_analyzer", "_get_smoothed_volume", "_prev_volume",
                  "_smoothing_factor"),
}
# A window whose loudest sample is below this (-50 dBFS; speech on a phone line peaks
# 30 dB higher) is silent. After SILENCE_WINDOWS of them in a row (0.64 s at 8 kHz) the
# smoothed volume is far under pipecat's min_volume, its volume gate calls every window
# "not speech" whatever the model says, and the model is not run until the next sound.
SILENCE_PEAK = 100
SILENCE_WINDOWS = 20

CLAUSE_ENDS = ",;:!?"  # end a first clause at once
MIN_CLAUSE_WORDS = 3  # "Yes, ..." alone is too short to be worth a request of its own
# A stop after one of these (or after a number: "$29.9") is not the end of a clause.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "no", "mt",
                           "ft", "prof", "inc", "ltd", "co", "e.g", "i.e", "a.m", "p.m"})
_LAST_WORD = re.compile(r"([A-Za-z.]+)\.$")


def installed_version() -> str:
    return str(pipecat.__version__)


def _ends_clause(text: str, char: str) -> bool:
    if len(text.split()) < MIN_CLAUSE_WORDS:
        return False
    if char in CLAUSE_ENDS:
        return True
    if char != ".":
        return False
    word = _LAST_WORD.search(text.rstrip(" ").rstrip("\n"))
    return word is not None and len(word.group(1)) >= 2 and \
        word.group(1).lower() not in ABBREVIATIONS and "." not in word.group(1)


class FirstClauseAggregator(SimpleTextAggregator):
    """Sentence aggregation, except that a reply's first clause is released the moment
    its punctuation arrives."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if not self._first or self.aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for index, char in enumerate(text):
            self._text += char
            if _ends_clause(self._text, char):
                clause = self._text.strip(" ")
                await super().reset()  # type: ignore[no-untyped-call]
                self._first = False
                yield Aggregation(text=clause, type=TextType.SENTENCE)
                async for aggregation in super().aggregate(text[index + 1:]):
                    yield aggregation
                return

    async def flush(self) -> Aggregation | None:
        self._first = True  # the reply ended: the next one starts with a clause again
        result: Aggregation | None = await super().flush()
        return result

    async def handle_interruption(self) -> None:
        self._first = True
        await super().handle_interruption()  # type: ignore[no-untyped-call]

    async def reset(self) -> None:
        self._first = True
        await super().reset()  # type: ignore[no-untyped-call]


def use_first_clause_aggregator(tts: TTSService) -> None:
    current = tts._text_aggregator
    tts._text_aggregator = FirstClauseAggregator(aggregation_type=current.aggregation_type,
                                                 language=current.language)


class InlineVADAnalyzer(VADAnalyzer):
    """Analysis inline (pipecat's `_run_analyzer`) instead of on a one-thread executor per
    call: a window costs a fraction of a millisecond, less than the hand-off."""

    async def analyze_audio(self, buffer: bytes) -> VADState:
        return self._run_analyzer(buffer)


def session_for(path: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"],
                                        sess_options=options)


class _SharedSileroModel(SileroOnnxModel):
    """pipecat's Silero wrapper (state, context, checks) on a shared session."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self.reset_states()  # type: ignore[no-untyped-call]
        self.sample_rates = [8000, 16000]


class SharedSileroVADAnalyzer(InlineVADAnalyzer, SileroVADAnalyzer):
    def __init__(self, *, sample_rate: int, params: VADParams,
                 session: onnxruntime.InferenceSession) -> None:
        # SileroVADAnalyzer.__init__ would open a session of its own: set up what it
        # sets up on the shared one.
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _SharedSileroModel(session)
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._silent_windows = 0
        self.skipped_windows = 0

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, np.int16)
        if samples.size and int(np.abs(samples, dtype=np.int32).max()) < SILENCE_PEAK:
            self._silent_windows += 1
        else:
            self._silent_windows = 0
        if self._silent_windows > SILENCE_WINDOWS:
            self.skipped_windows += 1
            return 0.0
        confidence: float = super().voice_confidence(buffer)
        return confidence

    def _get_smoothed_volume(self, audio: bytes) -> float:
        if self._silent_windows > SILENCE_WINDOWS:
            # The volume window (0.4 s) holds silence only: its volume is 0, and the
            # smoothed volume decays toward it exactly as pipecat computes it.
            return float(self._prev_volume) * (1.0 - float(self._smoothing_factor))
        volume: float = super()._get_smoothed_volume(audio)
        return volume

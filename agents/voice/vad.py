"""Voice activity detection for turn taking: Silero (a small local model, the default)
or a plain energy detector (almost free, for load tests and clean lines).

Two changes to pipecat's analyzers, both measured (BENCHMARKS.md, "Phone calls"):
- One Silero ONNX session for the whole process instead of one per call (about 10 MB of
  every call's memory). Each call keeps its own recurrent state; ONNX Runtime's `run` is
  safe to call from several threads at once.
- Analysis runs inline instead of on a one-thread executor per call: a window costs a
  fraction of a millisecond, less than handing every 20 ms frame to a thread and back.

- The model is not run on windows of silence (peak under -50 dBFS: the caller listening,
  digital silence between words): pipecat's volume gate says "not speech" for them
  whatever the model says, and they are most of a call's inbound audio.
The pieces that touch pipecat's private attributes are in agents/voice/pipecat_private.py.

Smart-turn (pipecat's turn model) is not used: it costs on the order of 100 ms of CPU per
turn, which at the calls per core we aim for is a core of its own.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import onnxruntime
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams

from agents.voice.pipecat_private import InlineVADAnalyzer, SharedSileroVADAnalyzer, session_for

# RMS of 16-bit samples that counts as full confidence; speech on a phone line sits well
# above it, line noise well below.
ENERGY_FULL_SCALE = 1500.0


class EnergyVADAnalyzer(InlineVADAnalyzer):
    """Confidence from the RMS energy of a 20 ms window."""

    def num_frames_required(self) -> int:
        return max(1, self.sample_rate // 50)

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, dtype=np.int16).astype(np.float32)
        if samples.size == 0:
            return 0.0
        rms = float(np.sqrt(np.mean(samples * samples)))
        return min(1.0, rms / ENERGY_FULL_SCALE)


@cache
def _silero_session() -> onnxruntime.InferenceSession:
    return session_for(str(resources.files("pipecat.audio.vad.data") / "silero_vad.onnx"))


def make_vad(kind: str, sample_rate: int) -> VADAnalyzer:
    params = VADParams()  # pipecat's defaults: 0.2 s of silence ends speech
    if kind == "energy":
        return EnergyVADAnalyzer(sample_rate=sample_rate, params=params)
    return SharedSileroVADAnalyzer(sample_rate=sample_rate, params=params,
                                   session=_silero_session())

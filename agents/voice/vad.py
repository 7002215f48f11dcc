"""Voice activity detection for turn taking: Silero (a small local model, the default)
or a plain energy detector (almost free, for load tests and clean lines).

Smart-turn (pipecat's turn model) is not used by default: it costs on the order of
100 ms of CPU per turn, which at 100 calls per core is a core of its own. A silence
timeout after the VAD says the caller stopped is cheap and good enough on the phone.
"""

from __future__ import annotations

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams

# RMS of 16-bit samples that counts as full confidence; speech on a phone line sits well
# above it, line noise well below.
ENERGY_FULL_SCALE = 1500.0


class EnergyVADAnalyzer(VADAnalyzer):
    """Confidence from the RMS energy of a 20 ms window."""

    def num_frames_required(self) -> int:
        return max(1, self.sample_rate // 50)

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, dtype=np.int16).astype(np.float32)
        if samples.size == 0:
            return 0.0
        rms = float(np.sqrt(np.mean(samples * samples)))
        return min(1.0, rms / ENERGY_FULL_SCALE)


def make_vad(kind: str, sample_rate: int) -> VADAnalyzer:
    params = VADParams(stop_secs=0.3)
    if kind == "energy":
        return EnergyVADAnalyzer(sample_rate=sample_rate, params=params)
    return SileroVADAnalyzer(sample_rate=sample_rate, params=params)

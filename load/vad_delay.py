"""How long after a caller's speech ends pipecat's Silero VAD says so, on the tone-coded
speech the simulated callers send and on real speech synthesized with espeak-ng at
benchmark time (`apt-get install espeak-ng`), both as a caller's audio reaches the
gateway: 8 kHz mu-law, fed 40 ms at a time like the gateway does.

The stop delay is the time from the end of the speech (the last 10 ms window louder than
-40 dBFS) to the VAD's stop decision, minus its `stop_secs`: what turn detection adds
beyond the silence it is configured to wait for. Run alone:
`python -m load.vad_delay --phrases 6`.
"""

from __future__ import annotations

import argparse
import asyncio
import audioop  # pipecat converts with it too; removed only in Python 3.13
import io
import shutil
import subprocess
import sys
import threading
import wave

import numpy as np
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from load import speech
from load.bench_load import PHRASES

RATE = 8000
CHUNK_BYTES = 640  # 40 ms of 16-bit PCM at 8 kHz: what the gateway hands its VAD
TAIL_S = 1.5
LOUD = 32768 * 0.01  # -40 dBFS

# Questions callers ask, beside the benchmark's own three.
MORE_PHRASES = (
    "I would like to book an appointment for next Tuesday morning",
    "Can you tell me how much the delivery costs",
    "My order has not arrived yet and I am getting worried",
    "Could I speak to somebody about my invoice please",
    "Yes, that works for me, thank you very much",
)


def espeak_pcm(text: str, voice: str = "en-us") -> bytes | None:
    """`text` spoken by espeak-ng, 16-bit PCM at 8 kHz through mu-law (as a phone line
    carries it); None when espeak-ng is not installed."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    done = subprocess.run([binary, "-v", voice, "-s", "165", "--stdout", text],
                          capture_output=True, check=True, timeout=60)
    with wave.open(io.BytesIO(done.stdout)) as wav:
        rate, width = wav.getframerate(), wav.getsampwidth()
        pcm = wav.readframes(wav.getnframes())
    if wav.getnchannels() != 1 or width != 2:
        raise RuntimeError("espeak-ng gave other than 16-bit mono audio")
    pcm, _ = audioop.ratecv(pcm, 2, 1, rate, RATE, None)
    return speech.ulaw_decode(speech.ulaw_encode(pcm))


def speech_end_s(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    window = RATE // 100
    loud = [i for i in range(0, len(samples) - window + 1, window)
            if np.sqrt(np.mean(samples[i:i + window] ** 2)) > LOUD]
    return (loud[-1] + window) / RATE if loud else 0.0


async def stop_delay_s(pcm: bytes, params: VADParams) -> float | None:
    """Seconds from the end of the speech in `pcm` to the VAD's last stop decision, minus
    stop_secs; None when it never said the speech started and stopped."""
    analyzer = SileroVADAnalyzer(sample_rate=RATE, params=params)
    analyzer.set_sample_rate(RATE)
    audio = pcm + b"\x00" * int(TAIL_S * RATE * 2)
    previous, stopped_at = VADState.QUIET, None
    for start in range(0, len(audio) - CHUNK_BYTES + 1, CHUNK_BYTES):
        state = await analyzer.analyze_audio(audio[start:start + CHUNK_BYTES])
        if previous == VADState.STOPPING and state == VADState.QUIET:
            stopped_at = (start + CHUNK_BYTES) / 2 / RATE
        previous = state
    if stopped_at is None:
        return None
    return stopped_at - speech_end_s(pcm) - params.stop_secs


def _stats(values: list[float]) -> str:
    if not values:
        return "none measured"
    ms = sorted(v * 1000 for v in values)
    return (f"p50 {ms[len(ms) // 2]:.0f} ms, max {ms[-1]:.0f} ms over {len(ms)} "
            "utterances")


async def measure(phrases: int, stop_s: float) -> tuple[list[float], list[float], int]:
    """(tone-coded delays, espeak-ng delays, phrases the VAD missed)."""
    params = VADParams(stop_secs=stop_s)
    texts = [*PHRASES, *MORE_PHRASES][:max(1, phrases)]
    tone: list[float] = []
    real: list[float] = []
    missed = 0
    for index, text in enumerate(texts):
        coded = speech.render_utterance(speech.phrase_code(text),
                                        speech.utterance_seconds(text), voice=index)
        pcm = speech.ulaw_decode(speech.ulaw_encode(coded))
        delay = await stop_delay_s(pcm, params)
        if delay is None:
            missed += 1
        else:
            tone.append(delay)
        spoken = espeak_pcm(text)
        if spoken is None:
            continue
        delay = await stop_delay_s(spoken, params)
        if delay is None:
            missed += 1
        else:
            real.append(delay)
    return tone, real, missed


def report(phrases: int, stop_s: float) -> str:
    logger.remove()  # pipecat's loguru chatter (DEBUG per model load)
    logger.add(sys.stderr, level="WARNING")
    tone, real, missed = _run_sync(phrases, stop_s)
    lines = [f"Silero's stop delay (after the end of the speech, beyond its stop_secs of "
             f"{stop_s * 1000:.0f} ms; 8 kHz mu-law fed 40 ms at a time): tone-coded caller "
             f"speech {_stats(tone)}; real speech (espeak-ng) "
             + (_stats(real) if shutil.which("espeak-ng") else
                "not measured: espeak-ng is not installed (apt-get install espeak-ng)")
             + (f"; {missed} utterances without a start and stop" if missed else "") + "."]
    return "\n".join(lines)


def _run_sync(phrases: int, stop_s: float) -> tuple[list[float], list[float], int]:
    """`measure` from synchronous code, also when an event loop is already running in
    this thread (the benchmark calls it from its own loop)."""
    result: list[tuple[list[float], list[float], int]] = []

    def target() -> None:
        result.append(asyncio.run(measure(phrases, stop_s)))

    thread = threading.Thread(target=target, name="vad-delay")
    thread.start()
    thread.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.vad_delay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrases", type=int, default=6)
    parser.add_argument("--stop-s", type=float, default=0.2)
    args = parser.parse_args()
    print(report(args.phrases, args.stop_s))


if __name__ == "__main__":
    main()

"""Simulated caller speech that the STT emulator can "hear": pure, numpy only.

Why: a load test must drive the gateway's real turn detection (Silero VAD on the caller's
audio) and its real STT client, and still know which words the caller said, so that the
transcript and everything the agent does after it can be checked.

How the words travel. Caller and STT emulator share a `PhraseBook` that maps each text to a
code (the emulator's `POST /_emulator/stt/phrases`). The caller renders speech-like audio:
harmonics of a gliding pitch, shaped by vowel formants that move from a consonant locus to
the vowel at every syllable, with closures between syllables. Silero VAD scores it as
speech (0.99 on average over 240 utterances of 0.8-8 s, at 8 kHz and at 16 kHz after
mu-law; silence stays under 0.05) and pipecat's VAD reports exactly one turn for each.
The voice is kept below 2.1 kHz; above it, for the whole utterance, four steady pilot
tones out of 28 slots (2.2-3.55 kHz, 50 Hz apart) spell the code as a four-of-28
combination. Because the pilots last as long as the voice, any 0.1 s of the utterance
carries the whole code: a start the VAD cut off, silence before or after, mu-law, and
resampling to 16 kHz change nothing. The decoder takes one spectrum of the loud part of a
clip and accepts exactly four clear peaks, so a clip without pilots (silence, the agent's
own voice) decodes to None.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import cache, lru_cache
from math import comb

import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.float64]

SAMPLE_RATE = 8000  # what a caller sends: Twilio media streams are mu-law 8 kHz
WORDS_PER_SECOND = 2.5
MIN_SECONDS = 0.8  # Silero needs ~0.4 s before pipecat's VAD reports a start
PILOT_BASE_HZ, PILOT_STEP_HZ, PILOT_SLOTS, PILOTS = 2200.0, 50.0, 28, 4
CODES = comb(PILOT_SLOTS, PILOTS)  # 20,475 distinct phrases at a time
VOICE_RMS = 0.1  # -20 dBFS, an ordinary telephone level
PILOT_AMPLITUDE = 0.01  # each pilot 20 dB under the voice: Silero still hears speech
_PASS_HZ, _STOP_HZ = 1700.0, 2100.0  # the voice fades out here, below the first pilot
# (F1, F2, F3) of /a/, /i/, /u/, /e/, /o/, /ae/, /schwa/-ish vowels; F2 loci of /b/, /d/, /g/.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
           (570, 840, 2410), (660, 1720, 2410), (440, 1020, 2240))
_OPEN = (0, 4, 5)  # /a/, /o/, /ae/
_LOCI = (900.0, 1700.0, 2200.0)
_PHRASE_S = 2.4  # intonation falls over a phrase, then resets
_BANDWIDTHS = (90.0, 110.0, 170.0)
_VOICES_HZ = (110.0, 125.0, 95.0, 140.0, 118.0, 102.0)  # base pitch of each caller voice


def ulaw_encode(pcm: bytes) -> bytes:
    """G.711 mu-law of PCM s16le, bit-identical to the deprecated `audioop.lin2ulaw`."""
    value = np.frombuffer(pcm, dtype="<i2").astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), 8159) + 0x21
    segment = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]),
                              magnitude, side="left")
    code = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


@cache
def _ulaw_table() -> npt.NDArray[np.int16]:
    inverted = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + 0x84) << ((inverted & 0x70) >> 4)
    return np.where(inverted & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def ulaw_decode(data: bytes) -> bytes:
    """PCM s16le of G.711 mu-law bytes, bit-identical to `audioop.ulaw2lin`."""
    return _ulaw_table()[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def utterance_seconds(text: str) -> float:
    """How long a caller takes to say `text`: 2.5 words a second, never under 0.8 s."""
    return max(MIN_SECONDS, len(text.split()) / WORDS_PER_SECOND)


def phrase_code(text: str) -> int:
    """The code a text gets unless another text holds it: stable across runs."""
    digest = hashlib.blake2b(normalize(text).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % CODES


def normalize(text: str) -> str:
    return " ".join(text.split())


class PhraseBook:
    """Texts and their codes. A text keeps its code while it is in the book; when all
    codes are taken, the phrase least recently registered gives its code up."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._texts: OrderedDict[int, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    def register(self, text: str) -> int:
        text = normalize(text)
        if not text:
            raise ValueError("a phrase needs at least one word")
        if text in self._codes:
            self._texts.move_to_end(self._codes[text])
            return self._codes[text]
        if len(self._texts) >= CODES:
            _, evicted = self._texts.popitem(last=False)
            del self._codes[evicted]
        code = phrase_code(text)
        while code in self._texts:
            code = (code + 1) % CODES
        self._codes[text], self._texts[code] = code, text
        return code

    def text_for(self, code: int) -> str | None:
        return self._texts.get(code)


def pilot_slots(code: int) -> tuple[int, ...]:
    """The four pilot slots of a code (combinatorial number system, largest first)."""
    if not 0 <= code < CODES:
        raise ValueError(f"code must be in [0, {CODES})")
    slots, rest = [], code
    for k in range(PILOTS, 0, -1):
        slot = k - 1
        while comb(slot + 1, k) <= rest:
            slot += 1
        slots.append(slot)
        rest -= comb(slot, k)
    return tuple(slots)


def code_of(slots: tuple[int, ...]) -> int:
    return sum(comb(slot, k) for k, slot in enumerate(sorted(slots), start=1))


def _syllables(seconds: float, rng: np.random.Generator) -> Signal:
    bounds = [0.0]
    while bounds[-1] < seconds:
        bounds.append(bounds[-1] + rng.uniform(0.15, 0.25))
    bounds[-1] = seconds
    return np.array(bounds)


def _articulation(bounds: Signal, n: int, rate: int,
                  rng: np.random.Generator) -> tuple[Signal, Signal, Signal]:
    """Formant tracks (3, n), loudness envelope and where consonant noise goes."""
    formants, envelope, noise_gate = np.zeros((3, n)), np.zeros(n), np.zeros(n)
    for index in range(len(bounds) - 1):
        start, end = int(bounds[index] * rate), int(bounds[index + 1] * rate)
        if end <= start:
            continue
        # Open vowels on every other syllable: long runs of /i/ and /u/ sound least like
        # speech to Silero (measured: 0.1-0.3 alone, against 0.6 for /a/).
        pick = _OPEN[rng.integers(len(_OPEN))] if index % 2 == 0 else rng.integers(len(_VOWELS))
        vowel = _VOWELS[pick]
        locus = _LOCI[rng.integers(len(_LOCI))]
        elapsed = np.arange(end - start) / rate
        glide = np.clip(elapsed / 0.06, 0.0, 1.0)  # 60 ms consonant-to-vowel transition
        formants[0, start:end] = 250.0 + (vowel[0] - 250.0) * glide
        formants[1, start:end] = locus + (vowel[1] - locus) * glide
        formants[2, start:end] = vowel[2]
        length = (end - start) / rate
        shape = np.sqrt(np.sin(np.pi * np.clip(elapsed / length, 0.0, 1.0)))
        if index > 0:  # a short closure, as before a stop consonant: never a pause
            shape = np.where(elapsed < min(0.12, 0.3 * length), 0.08, shape)
            if rng.random() < 0.3:
                noise_gate[start:start + int(min(0.05, 0.3 * length) * rate)] = 1.0
        envelope[start:end] = np.maximum(shape, 0.05)
    smooth = np.ones(max(1, rate // 200)) / max(1, rate // 200)  # 5 ms
    return formants, np.convolve(envelope, smooth, mode="same"), noise_gate


def _pitch(bounds: Signal, n: int, rate: int, base_hz: float,
           rng: np.random.Generator) -> Signal:
    """Falling intonation, an accent per syllable and a little jitter."""
    t = np.arange(n) / rate
    seconds = max(n / rate, 1e-3)
    drift = np.cumsum(rng.normal(0.0, 0.002, n))
    drift -= np.linspace(0.0, drift[-1], n)
    centres = (bounds[:-1] + bounds[1:]) / 2
    accents = np.interp(t, centres, rng.uniform(0.93, 1.1, len(centres)))
    phrase = np.mod(t, _PHRASE_S) / min(seconds, _PHRASE_S)  # pitch resets every phrase
    return base_hz * (1.12 - 0.24 * phrase) * (1 + np.clip(drift, -0.05, 0.05)) * accents


def _resonance(freq: Signal, centre: Signal, bandwidth: float) -> Signal:
    return np.asarray(centre**2 / np.sqrt((centre**2 - freq**2) ** 2 + (bandwidth * freq) ** 2))


def _voiced(f0: Signal, formants: Signal, rate: int) -> Signal:
    """A glottal source (harmonics falling 6 dB/octave) through three formants. Harmonic
    amplitudes change slowly: they are computed every 2.5 ms and interpolated."""
    fundamental = np.exp(2j * np.pi * np.cumsum(f0) / rate)
    harmonic = fundamental.copy()  # e^(i k phase), one complex product per harmonic
    grid = np.arange(0, len(f0), max(1, rate // 400))
    every = np.arange(len(f0))
    out = np.zeros(len(f0))
    for k in range(1, int(_STOP_HZ / max(float(f0.min()), 50.0)) + 2):
        freq = k * f0[grid]
        gain = np.clip((_STOP_HZ - freq) / (_STOP_HZ - _PASS_HZ), 0.0, 1.0)
        amplitude = (0.5 - 0.5 * np.cos(np.pi * gain)) / k
        for formant, bandwidth in zip(formants[:, grid], _BANDWIDTHS, strict=True):
            amplitude = amplitude * _resonance(freq, formant, bandwidth)
        if amplitude.any():
            out += np.interp(every, grid, amplitude) * harmonic.imag
        harmonic *= fundamental
    return out


def _frication(gate: Signal, rate: int, rng: np.random.Generator) -> Signal:
    """Consonant noise in 1-2 kHz: below the pilots, so it cannot mask them."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, len(gate)))
    freqs = np.fft.rfftfreq(len(gate), 1 / rate)
    spectrum[(freqs < 1000) | (freqs > 2000)] = 0
    noise = np.fft.irfft(spectrum, len(gate))
    noise /= float(np.std(noise)) + 1e-12
    smooth = np.ones(max(1, rate // 100)) / max(1, rate // 100)
    return np.asarray(noise * np.convolve(gate, smooth, mode="same"))


def speech_like(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0,
                voice: int = 0) -> tuple[Signal, Signal]:
    """Speech-like audio without a code (the voice at VOICE_RMS) and its envelope."""
    rng = np.random.default_rng([seed, voice])
    n = max(1, int(seconds * rate))
    bounds = _syllables(seconds, rng)
    formants, envelope, noise_gate = _articulation(bounds, n, rate, rng)
    f0 = _pitch(bounds, n, rate, _VOICES_HZ[voice % len(_VOICES_HZ)], rng)
    t = np.arange(n) / rate
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.03).clip(0.0, 1.0)
    envelope = envelope * ramp
    audio = _voiced(f0, formants, rate) * envelope
    audio *= VOICE_RMS / (float(np.sqrt(np.mean(audio**2))) + 1e-12)
    return audio + 0.05 * _frication(noise_gate, rate, rng), envelope


def to_pcm(audio: Signal) -> bytes:
    return np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2").tobytes()


@lru_cache(maxsize=512)
def render_utterance(code: int, seconds: float, voice: int = 0) -> bytes:
    """PCM s16le at 8 kHz of a caller saying the phrase with `code` for `seconds`."""
    slots = pilot_slots(code)
    audio, envelope = speech_like(seconds, SAMPLE_RATE, seed=code, voice=voice)
    t = np.arange(len(audio)) / SAMPLE_RATE
    rng = np.random.default_rng([code, voice, 1])
    for slot in slots:
        freq = PILOT_BASE_HZ + PILOT_STEP_HZ * slot
        audio = audio + PILOT_AMPLITUDE * envelope * np.sin(2 * np.pi * freq * t
                                                            + rng.uniform(0, 2 * np.pi))
    return to_pcm(audio)


def _loud_span(samples: Signal, rate: int) -> Signal:
    """The samples from the first to the last 10 ms frame within 26 dB of the loudest."""
    frame = max(1, rate // 100)
    count = len(samples) // frame
    if count == 0:
        return samples
    rms = np.sqrt(np.mean(samples[:count * frame].reshape(count, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms >= 0.05 * float(rms.max()))
    return samples[loud[0] * frame:(loud[-1] + 1) * frame]


def _magnitudes(span: Signal, rate: int, freqs: Signal) -> Signal:
    size = 1 << int(np.ceil(np.log2(max(len(span), 4 * rate))))  # bins of 0.25 Hz or finer
    spectrum = np.abs(np.fft.rfft(span * np.hanning(len(span)), size))
    return np.asarray(spectrum[np.round(freqs * size / rate).astype(int)])


def decode_utterance(pcm: bytes, sample_rate: int) -> int | None:
    """The code carried by PCM s16le mono audio, or None when it carries none clearly."""
    samples = np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768
    if sample_rate < SAMPLE_RATE or not samples.any():
        return None
    span = _loud_span(samples, sample_rate)
    if len(span) < sample_rate // 10:
        return None
    slots: Signal = PILOT_BASE_HZ + PILOT_STEP_HZ * np.arange(PILOT_SLOTS, dtype=np.float64)
    pilots = _magnitudes(span, sample_rate, slots)
    floor = float(np.median(_magnitudes(span, sample_rate, slots + PILOT_STEP_HZ / 2)))
    order = np.argsort(pilots)[::-1]
    strongest, fourth, fifth = (float(pilots[order[i]]) for i in (0, PILOTS - 1, PILOTS))
    if fourth < 0.3 * strongest or fifth > 0.35 * fourth or fourth < 10 * floor:
        return None
    return code_of(tuple(int(slot) for slot in order[:PILOTS]))


@cache
def _agent_loop(rate: int) -> npt.NDArray[np.int16]:
    audio, _ = speech_like(6.0, rate, seed=rate, voice=3)
    return np.frombuffer(to_pcm(audio), dtype="<i2")


def speech_pcm(offset: int, count: int, rate: int) -> bytes:
    """`count` samples (PCM s16le at `rate`) of a looping, coded-less voice, from sample
    `offset` on: what a TTS emulator streams, cheap enough for every request."""
    loop = _agent_loop(rate)
    return loop[np.arange(offset, offset + count) % len(loop)].tobytes()

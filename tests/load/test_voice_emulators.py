"""Voice vendors: what a simulated caller says survives the telephone path and pipecat's own
VAD and STT client; the ElevenLabs stream is what pipecat's HTTP TTS service parses; Twilio
call updates that transfer a call are recorded and listed."""

from __future__ import annotations

import asyncio
import base64
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import numpy as np
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipecat.audio.utils import create_stream_resampler, pcm_to_wav, ulaw_to_pcm
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.workers.runner import WorkerRunner

from load import speech
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.openai_stt import SttState, SttTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators

SID, TOKEN = "AC" + "2" * 32, "twilio-secret"
BOOKING = "I would like to book an appointment for tomorrow at ten"


@pytest.fixture
async def emulators() -> AsyncIterator[RunningEmulators]:
    config = EmulatorConfig(ChatState(ChatTiming(0, 0)), VendorState(twilio_accounts={SID: TOKEN}),
                            SttState(SttTiming(latency_ms=0)))
    running = await start_emulators(config=config)
    yield running
    await running.stop()


def _samples(pcm: bytes) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.frombuffer(pcm, dtype="<i2")


async def _telephone(pcm: bytes, rate: int) -> bytes:
    """What pipecat makes of a caller's 8 kHz audio: mu-law on the wire, decoded and
    resampled 20 ms at a time by the stream resampler its Twilio serializer uses."""
    mulaw, resampler, out = speech.ulaw_encode(pcm), create_stream_resampler(), b""
    for start in range(0, len(mulaw), 160):
        out += await ulaw_to_pcm(mulaw[start:start + 160], 8000, rate, resampler)
    return out


def _silence(seconds: float, rate: int) -> bytes:
    return bytes(2 * int(seconds * rate))


# -- load.speech ------------------------------------------------------------------------

def test_ulaw_matches_g711() -> None:
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

        assert speech.ulaw_encode(every_sample) == audioop.lin2ulaw(every_sample, 2)
        assert speech.ulaw_decode(bytes(range(256))) == audioop.ulaw2lin(bytes(range(256)), 2)
    assert speech.ulaw_encode(_silence(0.001, 8000)) == b"\xff" * 8
    assert _samples(speech.ulaw_decode(b"\x80\x00\xff")).tolist() == [32124, -32124, 0]


@given(st.integers(0, speech.CODES - 1))
def test_every_code_is_four_distinct_pilots(code: int) -> None:
    slots = speech.pilot_slots(code)
    assert len(set(slots)) == 4 and all(0 <= s < speech.PILOT_SLOTS for s in slots)
    assert speech.code_of(slots) == code


def test_phrase_book_keeps_codes_and_resolves_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    book = speech.PhraseBook()
    code = book.register(" book  an appointment ")
    assert code == book.register("book an appointment") == speech.phrase_code("book an appointment")
    assert book.text_for(code) == "book an appointment"
    with pytest.raises(ValueError):
        book.register("   ")
    monkeypatch.setattr(speech, "phrase_code", lambda text: 7)
    monkeypatch.setattr(speech, "CODES", 9)
    small = speech.PhraseBook()
    assert [small.register(f"phrase {i}") for i in range(3)] == [7, 8, 0]
    for i in range(3, 9):
        small.register(f"phrase {i}")
    assert small.register("one more") == 7  # the oldest phrase gave its code up
    assert small.text_for(7) == "one more" and len(small) == 9


def test_duration_follows_the_word_count() -> None:
    assert speech.utterance_seconds("yes") == speech.MIN_SECONDS
    assert speech.utterance_seconds(" ".join(["word"] * 10)) == pytest.approx(4.0)
    assert len(speech.render_utterance(5, 4.0)) == 2 * 4 * 8000


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("cut_s", [0.0, 0.1, 0.2, 0.3])
async def test_the_code_survives_the_telephone_path(rate: int, cut_s: float) -> None:
    for code, seconds, voice in ((0, 0.8, 0), (4296, 2.4, 1), (speech.CODES - 1, 4.0, 3)):
        heard = await _telephone(speech.render_utterance(code, seconds, voice), rate)
        cut = heard[2 * int(cut_s * rate):]
        segment = _silence(1.0, rate) + cut + _silence(0.5, rate)
        assert speech.decode_utterance(segment, rate) == code, (code, seconds, voice)


def test_audio_without_pilots_decodes_to_nothing() -> None:
    rng = np.random.default_rng(3)
    noise = (rng.normal(0, 3000, 16000)).astype("<i2").tobytes()
    mixed = (_samples(speech.render_utterance(1, 2.0)).astype(np.int32)
             + _samples(speech.render_utterance(2, 2.0))).clip(-32768, 32767).astype("<i2")
    for audio in (_silence(2.0, 8000), noise, speech.speech_pcm(0, 16000, 8000), mixed.tobytes(),
                  speech.render_utterance(3, 1.0)[:1000]):
        assert speech.decode_utterance(audio, 8000) is None
    assert speech.decode_utterance(speech.speech_pcm(0, 48000, 16000), 16000) is None


# -- Silero VAD hears the caller -----------------------------------------------------------

def _silero(rate: int) -> SileroVADAnalyzer:
    vad = SileroVADAnalyzer(sample_rate=rate, params=VADParams(stop_secs=0.2))
    vad.set_sample_rate(rate)
    return vad


def _confidences(vad: SileroVADAnalyzer, pcm: bytes) -> list[float]:
    window = 2 * vad.num_frames_required()
    return [float(np.asarray(vad.voice_confidence(pcm[i:i + window])).reshape(-1)[0])
            for i in range(0, len(pcm) - window + 1, window)]


async def _states(vad: SileroVADAnalyzer, pcm: bytes, rate: int) -> list[VADState]:
    frame = 2 * rate // 50
    return [await vad.analyze_audio(pcm[i:i + frame]) for i in range(0, len(pcm), frame)]


def _speech_starts(states: Sequence[VADState]) -> int:
    return sum(1 for before, now in zip((VADState.QUIET, *states), states, strict=False)
               if now == VADState.SPEAKING and before in (VADState.QUIET, VADState.STARTING))


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_silero_hears_the_utterance_and_not_silence(rate: int) -> None:
    for code, seconds, voice in ((11, 0.8, 0), (222, 2.4, 2), (3333, 5.0, 3)):
        utterance = await _telephone(speech.render_utterance(code, seconds, voice), rate)
        heard = _confidences(_silero(rate), utterance)
        assert np.mean(heard) > 0.9 and np.mean(np.array(heard) >= 0.7) > 0.85, heard
        quiet = _confidences(_silero(rate), _silence(2.0, rate))
        assert max(quiet) < 0.1
        vad = _silero(rate)
        states = await _states(vad, _silence(1.0, rate) + utterance + _silence(1.0, rate), rate)
        assert _speech_starts(states) == 1 and states[-1] == VADState.QUIET
        await vad.cleanup()  # type: ignore[no-untyped-call]  # pipecat leaves it unannotated


# -- STT emulator --------------------------------------------------------------------------

class Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)


async def _run(processors: list[FrameProcessor], frames: list[Frame], rate: int) -> None:
    worker = PipelineWorker(Pipeline(processors),
                            params=PipelineParams(audio_in_sample_rate=rate,
                                                  audio_out_sample_rate=rate),
                            idle_timeout_secs=None, enable_rtvi=False, check_dangling_tasks=False)
    await worker.queue_frames([*frames, EndFrame()])
    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(runner.run(), timeout=30)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_pipecat_vad_and_stt_transcribe_what_the_caller_said(
        emulators: RunningEmulators, rate: int) -> None:
    code = emulators.config.stt.phrases.register(BOOKING)
    caller = _silence(1.0, 8000) + speech.render_utterance(
        code, speech.utterance_seconds(BOOKING)) + _silence(1.5, 8000)
    audio = await _telephone(caller, rate)
    frames: list[Frame] = [InputAudioRawFrame(audio=audio[i:i + 2 * rate // 50],
                                              sample_rate=rate, num_channels=1)
                           for i in range(0, len(audio), 2 * rate // 50)]
    collect = Collect()
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.3)))
    stt = OpenAISTTService(api_key="k", base_url=emulators.base_urls()["openai"])
    await _run([vad, stt, collect], frames, rate)
    transcripts = [f for f in collect.frames if isinstance(f, TranscriptionFrame)]
    assert [t.text for t in transcripts] == [BOOKING]
    result = transcripts[0].result
    assert result is not None and result.usage.type == "tokens"  # default model: gpt-transcribe
    [seen] = emulators.config.stt.requests
    assert (seen.model, seen.language, seen.sample_rate) == ("gpt-transcribe", "en", rate)
    assert speech.utterance_seconds(BOOKING) < seen.audio_seconds < 7.5


async def test_openai_client_gets_the_text_and_the_model_usage(
        emulators: RunningEmulators) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=emulators.base_urls()["openai"],
                                max_retries=0)
    async with aiohttp.ClientSession() as http:
        registered = await (await http.post(f"{emulators.base}/_emulator/stt/phrases",
                                            json={"text": BOOKING})).json()
    wav = pcm_to_wav(speech.render_utterance(registered["code"], 4.0) + _silence(0.5, 8000), 8000)
    whisper = await client.audio.transcriptions.create(
        file=("audio.wav", wav, "audio/wav"), model="whisper-1", language="en")
    assert whisper.text == registered["text"] == BOOKING
    assert whisper.usage is not None and whisper.usage.type == "duration"
    assert whisper.usage.seconds == 5
    gpt = await client.audio.transcriptions.create(
        file=("audio.wav", wav, "audio/wav"), model="gpt-4o-transcribe", prompt="Dental clinic")
    assert gpt.usage is not None and gpt.usage.type == "tokens"
    assert gpt.usage.input_token_details is not None
    assert gpt.usage.input_token_details.audio_tokens == 45
    assert gpt.usage.input_token_details.text_tokens == gpt.usage.input_tokens - 45 > 0
    plain = await client.audio.transcriptions.create(
        file=("audio.wav", wav, "audio/wav"), model="whisper-1", response_format="text")
    assert plain.strip() == BOOKING
    silent = await client.audio.transcriptions.create(
        file=("audio.wav", pcm_to_wav(_silence(1.0, 16000), 16000), "audio/wav"),
        model="gpt-transcribe")
    assert silent.text == "" and silent.languages == []
    records = emulators.config.stt.requests
    assert [r.text for r in records] == [BOOKING, BOOKING, BOOKING, ""]
    assert records[0].audio_seconds == pytest.approx(4.5)
    assert emulators.config.stt.audio_seconds == pytest.approx(3 * 4.5 + 1.0)


async def test_stt_refuses_like_openai(emulators: RunningEmulators) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=emulators.base_urls()["openai"],
                                max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.audio.transcriptions.create(file=("audio.wav", b"RIFFnot a wav", "audio/wav"),
                                                 model="whisper-1")
    assert refused.value.param == "file"
    async with aiohttp.ClientSession(base_url=emulators.base) as http:
        form = aiohttp.FormData()
        form.add_field("model", "whisper-1")
        form.add_field("upload", b"x", filename="audio.wav")
        anonymous = await http.post("/v1/audio/transcriptions", data=form)
        assert anonymous.status == 401
        assert (await anonymous.json())["error"]["type"] == "invalid_request_error"
        missing = await http.post("/v1/audio/transcriptions", data=form,
                                  headers={"Authorization": "Bearer k"})
        assert missing.status == 400 and (await missing.json())["error"]["param"] == "file"
        empty = await http.post("/_emulator/stt/phrases", json={"text": " "})
        assert empty.status == 400
        listed = await (await http.get("/_emulator/stt/transcriptions")).json()
    assert listed == {"transcriptions": []}
    emulators.config.stt.fail_next.append(503)
    with pytest.raises(openai.InternalServerError):
        await client.audio.transcriptions.create(
            file=("audio.wav", pcm_to_wav(_silence(1.0, 8000), 8000), "audio/wav"),
            model="whisper-1")


# -- ElevenLabs with timestamps --------------------------------------------------------------

async def test_pipecat_elevenlabs_http_tts_reads_audio_and_words(
        emulators: RunningEmulators) -> None:
    text = "Hello there, how are you?"
    collect = Collect()
    async with aiohttp.ClientSession() as http:
        tts = ElevenLabsHttpTTSService(
            api_key="k", aiohttp_session=http, base_url=emulators.base_urls()["elevenlabs"],
            settings=ElevenLabsHttpTTSService.Settings(voice="voice-1"))
        await _run([tts, collect], [TTSSpeakFrame(text)], 16000)
    audio = b"".join(f.audio for f in collect.frames if isinstance(f, TTSAudioRawFrame))
    assert len(audio) == 2 * round(len(text) * 0.06 * 16000)
    assert np.sqrt(np.mean(_samples(audio).astype(float) ** 2)) > 1000  # it has energy
    words = [f.text for f in collect.frames if isinstance(f, TTSTextFrame)]
    assert words == ["Hello", "there,", "how", "are", "you?"]
    vendors = emulators.config.vendors
    assert vendors.tts_characters == len(text)
    [record] = vendors.tts_requests
    assert (record["voice"], record["output_format"], record["completed"]) == \
        ("voice-1", "pcm_16000", True)


async def test_with_timestamps_lines_align_and_pace(emulators: RunningEmulators) -> None:
    url = "/v1/text-to-speech/v/stream/with-timestamps"
    key = {"xi-api-key": "k"}
    async with aiohttp.ClientSession(base_url=emulators.base) as http:
        assert (await http.post(url, json={"text": "x"})).status == 401
        assert (await http.post(url + "?output_format=mp3_44100_128", json={"text": "x"},
                                headers=key)).status == 422
        assert (await http.post(url + "?output_format=ulaw_8000", json={},
                                headers=key)).status == 422
        response = await http.post(url + "?output_format=ulaw_8000", json={"text": "Hi, Bob!"},
                                   headers=key)
        lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
        emulators.config.vendors.tts_pacing, emulators.config.vendors.tts_ttfb_ms = 1.0, 50.0
        started = time.monotonic()
        paced = await http.post(url + "?output_format=pcm_8000", json={"text": "x" * 15},
                                headers=key)
        await paced.read()
        elapsed = time.monotonic() - started
    characters = [c for line in lines for c in line["alignment"]["characters"]]
    starts = [s for line in lines for s in line["alignment"]["character_start_times_seconds"]]
    ends = [e for line in lines for e in line["alignment"]["character_end_times_seconds"]]
    assert "".join(characters) == "Hi, Bob!" and len(lines) == 2
    assert starts == pytest.approx([0.06 * i for i in range(8)])
    assert ends[-1] == pytest.approx(0.48) and lines[0]["normalized_alignment"] == \
        lines[0]["alignment"]
    assert [len(base64.b64decode(line["audio_base64"])) for line in lines] == [5 * 480, 3 * 480]
    assert 0.6 <= elapsed < 2.0  # 50 ms to the first line, then one line every 300 ms
    assert emulators.config.vendors.tts_characters == 8 + 15


# -- Twilio REST ----------------------------------------------------------------------------

async def test_transfer_twiml_is_recorded_and_listed(emulators: RunningEmulators) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)}
    twiml = "<Response><Dial>+15550100999</Dial></Response>"
    async with aiohttp.ClientSession(base_url=emulators.base) as http:
        moved = await http.post(f"/2010-04-01/Accounts/{SID}/Calls/CA7.json",
                                data={"Twiml": twiml}, headers=auth)
        assert (await moved.json())["status"] == "in-progress"
        await http.post(f"/2010-04-01/Accounts/{SID}/Calls/CA8.json",
                        data={"Url": "https://gw.example/twiml/goodbye", "Method": "POST"},
                        headers=auth)
        everything = await (await http.get("/_emulator/twilio/calls")).json()
        one = await (await http.get("/_emulator/twilio/calls", params={"sid": "CA7"})).json()
    assert [c["sid"] for c in everything["calls"]] == ["CA7", "CA8"]
    assert everything["calls"][1]["Url"] == "https://gw.example/twiml/goodbye"
    [transfer] = one["calls"]
    assert (transfer["Twiml"], transfer["account_sid"]) == (twiml, SID)
    assert transfer["received_at"] > 0

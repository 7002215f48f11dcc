"""OpenAI speech-to-text emulator: `POST /v1/audio/transcriptions`, as pipecat's
`OpenAISTTService` calls it (multipart: a WAV `file`, `model`, `language`, maybe `prompt`,
`temperature`, `response_format`, `include[]`).

It "hears" only what `load.speech` renders: the pilot tones of an utterance give a code,
and the phrase book (filled through `POST /_emulator/stt/phrases`) gives the words. Any
other audio transcribes to empty text, as silence does at OpenAI.

Usage is what OpenAI reports for the model asked for. `whisper-1` is billed by duration:
`{"type": "duration", "seconds": N}` (whole seconds, rounded up). The GPT transcription
models, pipecat's default `gpt-transcribe` among them, are billed by tokens: `{"type":
"tokens", "input_tokens", "input_token_details": {"text_tokens", "audio_tokens"},
"output_tokens", "total_tokens"}`. OpenAI does not publish their audio token rate; the
emulator counts 10 audio tokens a second (the Realtime API's one token per 100 ms),
the prompt's tokens as text tokens, and the transcript's tokens as output tokens.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
import wave
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from multidict import MultiDictProxy

from load.emulators.tokens import count_tokens
from load.speech import PhraseBook, decode_utterance

AUDIO_TOKENS_PER_SECOND = 10


@dataclass
class SttTiming:
    latency_ms: float = 150.0  # from the end of the upload to the answer


@dataclass
class SttRequest:
    """One transcription, as the emulator saw it."""

    model: str
    audio_seconds: float
    sample_rate: int
    text: str
    code: int | None
    language: str | None
    prompt: str | None
    response_format: str
    at: float


@dataclass
class SttState:
    timing: SttTiming = field(default_factory=SttTiming)
    phrases: PhraseBook = field(default_factory=PhraseBook)
    requests: list[SttRequest] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer next, in order

    @property
    def audio_seconds(self) -> float:
        return sum(request.audio_seconds for request in self.requests)


STT = web.AppKey("stt_emulator", SttState)
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


def _error(status: int, message: str, kind: str, param: str | None = None,
           code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param,
                                        "code": code}}, status=status)


def read_wav(data: bytes) -> tuple[bytes, int]:
    """Mono PCM s16le and the sample rate of a 16-bit WAV file (first channel if more)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise BadRequest("Audio file might be corrupted or unsupported", "file",
                         "invalid_value") from exc
    if width != 2:
        raise BadRequest("The emulator reads 16-bit PCM WAV files only", "file",
                         "invalid_value")
    samples = np.frombuffer(frames[:len(frames) // (2 * channels) * 2 * channels], "<i2")
    return samples[::channels].tobytes(), rate


def _hear(upload: web.FileField) -> tuple[float, int, int | None]:
    """Seconds, sample rate and decoded phrase code of an uploaded WAV file."""
    pcm, rate = read_wav(upload.file.read())
    return len(pcm) / 2 / rate, rate, decode_utterance(pcm, rate)


def usage_for(model: str, audio_seconds: float, prompt: str | None,
              text: str) -> dict[str, Any]:
    if model.startswith("whisper"):
        return {"type": "duration", "seconds": math.ceil(audio_seconds)}
    audio = math.ceil(audio_seconds * AUDIO_TOKENS_PER_SECOND)
    prompt_tokens = count_tokens(prompt) if prompt else 0
    output = count_tokens(text)
    return {"type": "tokens", "input_tokens": audio + prompt_tokens,
            "input_token_details": {"text_tokens": prompt_tokens, "audio_tokens": audio},
            "output_tokens": output, "total_tokens": audio + prompt_tokens + output}


def _body(record: SttRequest, include: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"text": record.text}
    if record.response_format == "verbose_json":
        language = "english" if record.language in (None, "en") else record.language
        body = {"task": "transcribe", "language": language,
                "duration": round(record.audio_seconds, 3), "text": record.text,
                "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": record.audio_seconds,
                              "text": record.text, "tokens": [], "temperature": 0.0,
                              "avg_logprob": -0.05, "compression_ratio": 1.0,
                              "no_speech_prob": 0.01 if record.text else 0.9}]
                if record.text else []}
    if record.model == "gpt-transcribe":
        body["languages"] = [{"code": record.language or "en"}] if record.text else []
    if "logprobs" in include and not record.model.startswith("whisper"):
        body["logprobs"] = [{"token": word, "logprob": -0.01, "bytes": list(word.encode())}
                            for word in record.text.split(" ") if word]
    body["usage"] = usage_for(record.model, record.audio_seconds, record.prompt, record.text)
    return body


async def _transcribe(state: SttState, form: Form) -> tuple[SttRequest, list[str]]:
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise BadRequest("Missing required parameter: 'file'.", "file")
    model = str(form.get("model") or "")
    if not model:
        raise BadRequest("Missing required parameter: 'model'.", "model")
    response_format = str(form.get("response_format") or "json")
    if response_format not in ("json", "text", "verbose_json"):
        raise BadRequest(f"response_format '{response_format}' is not emulated", "response_format")
    # Reading the spooled upload and taking its spectrum are the slow parts: off the loop.
    seconds, rate, code = await asyncio.to_thread(_hear, upload)
    text = (state.phrases.text_for(code) or "") if code is not None else ""
    record = SttRequest(model=model, audio_seconds=seconds, sample_rate=rate,
                        text=text, code=code, language=_optional(form, "language"),
                        prompt=_optional(form, "prompt"), response_format=response_format,
                        at=time.time())
    include = [str(v) for key in ("include[]", "include") for v in form.getall(key, [])]
    return record, include


def _optional(form: Form, name: str) -> str | None:
    value = form.get(name)
    return str(value) if value is not None and not isinstance(value, web.FileField) else None


async def transcriptions(request: web.Request) -> web.Response:
    state = request.app[STT]
    if not request.headers.get("Authorization", "").removeprefix("Bearer ").strip():
        return _error(401, "You didn't provide an API key.", "invalid_request_error")
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _error(status, "emulated failure", "server_error" if status >= 500 else "rate")
    if not request.content_type.startswith("multipart/"):
        return _error(400, "Expected a multipart/form-data body.", "invalid_request_error")
    try:
        record, include = await _transcribe(state, await request.post())
    except BadRequest as exc:
        return _error(400, str(exc), "invalid_request_error", exc.param, exc.code)
    state.requests.append(record)
    await asyncio.sleep(state.timing.latency_ms / 1000)
    if record.response_format == "text":
        return web.Response(text=record.text + "\n", content_type="text/plain")
    return web.json_response(_body(record, include))


async def register_phrase(request: web.Request) -> web.Response:
    """`{"text": "..."}` -> `{"code": n, "text": "..."}`; the same text keeps its code."""
    try:
        text = str(orjson.loads(await request.read())["text"])
        code = request.app[STT].phrases.register(text)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return _error(400, "a JSON body with a non-empty 'text' is required",
                      "invalid_request_error", "text")
    return web.json_response({"code": code, "text": request.app[STT].phrases.text_for(code)})


async def list_transcriptions(request: web.Request) -> web.Response:
    """What was transcribed, for a load tool in another process."""
    return web.json_response({"transcriptions": [asdict(r) for r in request.app[STT].requests]})


def add_routes(app: web.Application, state: SttState) -> None:
    app[STT] = state
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/_emulator/stt/phrases", register_phrase)
    app.router.add_get("/_emulator/stt/transcriptions", list_transcriptions)

"""Twilio REST, WhatsApp Graph API and ElevenLabs streaming TTS emulators.

ElevenLabs `POST /v1/text-to-speech/{voice}/stream/with-timestamps` answers what pipecat's
`ElevenLabsHttpTTSService` reads: one JSON object per line, each with `audio_base64` (PCM
s16le at the rate of `output_format=pcm_<rate>`, or mu-law for `ulaw_8000`), `alignment`
and `normalized_alignment` ({characters, character_start_times_seconds,
character_end_times_seconds}, seconds from the start of the request's audio). Every
character lasts 60 ms, five characters a line, paced by `tts_pacing` after `tts_ttfb_ms`.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from load.speech import speech_pcm, ulaw_encode

WINDOW_S = 24 * 3600
SECONDS_PER_CHARACTER = 0.06
CHARACTERS_PER_CHUNK = 5  # 300 ms of audio per streamed line
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass
class VendorState:
    twilio_accounts: dict[str, str] = field(default_factory=dict)  # sid -> auth token
    twilio_calls: list[dict[str, Any]] = field(default_factory=list)
    twilio_messages: list[dict[str, Any]] = field(default_factory=list)
    graph_token: str = ""
    graph_messages: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[tuple[str, str], float] = field(default_factory=dict)  # last inbound
    tts_characters: int = 0
    tts_pacing: float = 0.0  # 1.0 = real time; 0 = as fast as possible
    tts_ttfb_ms: float = 0.0  # before the first audio of a with-timestamps stream
    tts_requests: list[dict[str, Any]] = field(default_factory=list)
    clock: Any = time.time


VENDORS = web.AppKey("vendor_emulators", VendorState)


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "status": status}, status=status)


def _twilio_auth(request: web.Request) -> web.Response | None:
    state = request.app[VENDORS]
    account = request.match_info["account"]
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        user = password = ""
    if scheme != "Basic" or account not in state.twilio_accounts:
        return _twilio_error(401 if scheme != "Basic" else 404, 20003 if scheme != "Basic"
                             else 20404, "Authenticate" if scheme != "Basic" else "Not found")
    if user != account or password != state.twilio_accounts[account]:
        return _twilio_error(401, 20003, "Authenticate")
    return None


async def twilio_call_update(request: web.Request) -> web.Response:
    """Hang up (`Status=completed`) or redirect a live call to new instructions: `Twiml`
    (a transfer is `<Response><Dial>+1555...</Dial></Response>`) or a `Url` to fetch."""
    denied = _twilio_auth(request)
    if denied:
        return denied
    form = {k: str(v) for k, v in (await request.post()).items()}
    state = request.app[VENDORS]
    call: dict[str, Any] = {"sid": request.match_info["call"],
                            "account_sid": request.match_info["account"], **form,
                            "received_at": state.clock()}
    state.twilio_calls.append(call)
    status = form.get("Status", "in-progress")
    return web.json_response({"sid": call["sid"], "account_sid": call["account_sid"],
                              "status": status, "uri": request.path})


async def twilio_calls_recorded(request: web.Request) -> web.Response:
    """`{"calls": [...]}`: every call update received (optionally `?sid=CA...` only),
    for a load tool in another process."""
    sid = request.query.get("sid")
    calls = [c for c in request.app[VENDORS].twilio_calls if sid is None or c["sid"] == sid]
    return web.json_response({"calls": calls})


def segments(text: str) -> int:
    gsm = all(ord(c) < 128 for c in text)
    single, multi = (160, 153) if gsm else (70, 67)
    length = len(text) if gsm else len(text.encode("utf-16-le")) // 2
    return 1 if length <= single else math.ceil(length / multi)


async def twilio_messages(request: web.Request) -> web.Response:
    denied = _twilio_auth(request)
    if denied:
        return denied
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not form.get("To") or not form.get("Body"):
        return _twilio_error(400, 21604, "A 'To' phone number and a 'Body' are required.")
    message = {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": form["To"],
               "from": form.get("From"), "body": form["Body"],
               "num_segments": str(segments(form["Body"]))}
    request.app[VENDORS].twilio_messages.append(message)
    return web.json_response(message, status=201)


def _graph_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "OAuthException",
                                        "code": code, "fbtrace_id": uuid.uuid4().hex[:12]}},
                             status=status)


async def graph_open_window(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    state = request.app[VENDORS]
    state.windows[(str(body["phone_number_id"]), str(body["from"]))] = state.clock()
    return web.json_response({"ok": True})


async def graph_send(request: web.Request) -> web.Response:
    state = request.app[VENDORS]
    if request.headers.get("Authorization") != f"Bearer {state.graph_token}":
        return _graph_error(401, 190, "Invalid OAuth access token.")
    try:
        body = orjson.loads(await request.read())
        to, text = str(body["to"]), str(body["text"]["body"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _graph_error(400, 100, "Invalid parameter")
    phone_id = request.match_info["phone_id"]
    opened = state.windows.get((phone_id, to))
    if opened is None or state.clock() - opened > WINDOW_S:
        return _graph_error(400, 131047, "Re-engagement message")
    message_id = "wamid." + uuid.uuid4().hex
    state.graph_messages.append({"id": message_id, "phone_number_id": phone_id, "to": to,
                                 "text": text})
    return web.json_response({"messaging_product": "whatsapp",
                              "contacts": [{"input": to, "wa_id": to}],
                              "messages": [{"id": message_id}]})


async def elevenlabs_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[VENDORS]
    if not request.headers.get("xi-api-key"):
        return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
    try:
        text = str(orjson.loads(await request.read())["text"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return web.json_response({"detail": {"status": "invalid_request"}}, status=422)
    state.tts_characters += len(text)
    state.tts_requests.append({"voice": request.match_info["voice"], "text": text,
                               "characters": len(text), "output_format": "ulaw_8000",
                               "at": state.clock()})
    response = web.StreamResponse(headers={"Content-Type": "audio/basic"})
    await response.prepare(request)
    samples = 8000 * 60 // 1000 * len(text)  # 60 ms of audio per character, mu-law 8 kHz
    tone = bytes((0x10 + (i % 16) * 6) for i in range(160))  # audible energy, not silence
    for _ in range(0, samples, 160):
        await response.write(tone)
        if state.tts_pacing:
            await asyncio.sleep(0.02 * state.tts_pacing)
    await response.write_eof()
    return response


def output_format(value: str) -> tuple[str, int] | None:
    """("pcm" | "ulaw", sample rate) of an ElevenLabs `output_format` the emulator makes."""
    codec, _, rate = value.partition("_")
    if codec == "pcm" and rate.isdigit() and int(rate) in PCM_RATES:
        return "pcm", int(rate)
    return ("ulaw", 8000) if value == "ulaw_8000" else None


def timestamp_lines(text: str, codec: str, rate: int) -> Iterator[bytes]:
    """The with-timestamps stream of `text`, one JSON line per chunk of characters."""
    per_character = round(SECONDS_PER_CHARACTER * rate)
    for first in range(0, len(text), CHARACTERS_PER_CHUNK):
        characters = list(text[first:first + CHARACTERS_PER_CHUNK])
        pcm = speech_pcm(first * per_character, len(characters) * per_character, rate)
        audio = ulaw_encode(pcm) if codec == "ulaw" else pcm
        starts = [round((first + i) * SECONDS_PER_CHARACTER, 3) for i in range(len(characters))]
        alignment = {"characters": characters, "character_start_times_seconds": starts,
                     "character_end_times_seconds": [round(s + SECONDS_PER_CHARACTER, 3)
                                                     for s in starts]}
        yield orjson.dumps({"audio_base64": base64.b64encode(audio).decode(),
                            "alignment": alignment, "normalized_alignment": alignment}) + b"\n"


def _elevenlabs_request(body: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(body)
        return payload if isinstance(payload, dict) and isinstance(payload["text"], str) \
            else None
    except (orjson.JSONDecodeError, KeyError):
        return None


async def elevenlabs_with_timestamps(request: web.Request) -> web.StreamResponse:
    state = request.app[VENDORS]
    if not request.headers.get("xi-api-key"):
        return web.json_response({"detail": {"status": "invalid_api_key",
                                             "message": "Invalid API key"}}, status=401)
    payload = _elevenlabs_request(await request.read())
    fmt = request.query.get("output_format", "mp3_44100_128")
    chosen = output_format(fmt)
    if payload is None or chosen is None:
        message = "text is required" if payload is None else f"{fmt} is not emulated"
        return web.json_response({"detail": {"status": "invalid_request", "message": message}},
                                 status=422)
    text = payload["text"]
    state.tts_characters += len(text)
    record = {"voice": request.match_info["voice"], "text": text, "characters": len(text),
              "model_id": payload.get("model_id"), "output_format": fmt, "at": state.clock(),
              "audio_seconds": round(len(text) * SECONDS_PER_CHARACTER, 3), "completed": False}
    state.tts_requests.append(record)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    record["completed"] = await _paced(response, timestamp_lines(text, *chosen), state)
    if record["completed"]:
        await response.write_eof()
    return response


async def _paced(response: web.StreamResponse, lines: Iterator[bytes],
                 state: VendorState) -> bool:
    """Writes the lines no faster than the audio they carry plays; False if the client
    went away first (an interrupted utterance)."""
    loop = asyncio.get_running_loop()
    start = loop.time() + state.tts_ttfb_ms / 1000
    chunk_s = CHARACTERS_PER_CHUNK * SECONDS_PER_CHARACTER * state.tts_pacing
    for index, line in enumerate(lines):
        delay = start + index * chunk_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await response.write(line)
        except ConnectionResetError:
            return False
    return True


async def openai_speech(request: web.Request) -> web.StreamResponse:
    """OpenAI `POST /v1/audio/speech` with `response_format=pcm` (what pipecat's
    `OpenAITTSService` asks for): raw PCM s16le at 24 kHz, 60 ms a character, in 300 ms
    chunks paced like the ElevenLabs stream (for the stock pipecat benchmark)."""
    state = request.app[VENDORS]
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return web.json_response({"error": {"message": "no API key"}}, status=401)
    try:
        payload = orjson.loads(await request.read())
        text = str(payload["input"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return web.json_response({"error": {"message": "input is required"}}, status=400)
    if payload.get("response_format", "mp3") != "pcm":
        return web.json_response({"error": {"message": "only pcm is emulated"}}, status=400)
    state.tts_characters += len(text)
    state.tts_requests.append({"voice": payload.get("voice"), "text": text,
                               "characters": len(text), "output_format": "pcm_24000",
                               "at": state.clock(), "completed": False})
    response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
    await response.prepare(request)
    per_character = round(SECONDS_PER_CHARACTER * 24000)
    chunks = (speech_pcm(first * per_character,
                         len(text[first:first + CHARACTERS_PER_CHUNK]) * per_character, 24000)
              for first in range(0, len(text), CHARACTERS_PER_CHUNK))
    state.tts_requests[-1]["completed"] = await _paced(response, chunks, state)
    if state.tts_requests[-1]["completed"]:
        await response.write_eof()
    return response


def add_routes(app: web.Application, state: VendorState) -> None:
    app[VENDORS] = state
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", twilio_call_update)
    app.router.add_get("/_emulator/twilio/calls", twilio_calls_recorded)
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", twilio_messages)
    app.router.add_post("/_emulator/inbound", graph_open_window)
    app.router.add_post("/{version:v[0-9.]+}/{phone_id}/messages", graph_send)
    app.router.add_post("/v1/text-to-speech/{voice}/stream", elevenlabs_stream)
    app.router.add_post("/v1/audio/speech", openai_speech)
    app.router.add_post("/v1/text-to-speech/{voice}/stream/with-timestamps",
                        elevenlabs_with_timestamps)

"""Twilio REST, WhatsApp Graph API and ElevenLabs streaming TTS emulators."""

from __future__ import annotations

import asyncio
import base64
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

WINDOW_S = 24 * 3600


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
    denied = _twilio_auth(request)
    if denied:
        return denied
    form = dict(await request.post())
    call = {"sid": request.match_info["call"], "account_sid": request.match_info["account"],
            **{k: str(v) for k, v in form.items()}}
    request.app[VENDORS].twilio_calls.append(call)
    status = str(form.get("Status", "in-progress"))
    return web.json_response({"sid": call["sid"], "account_sid": call["account_sid"],
                              "status": status})


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


def add_routes(app: web.Application, state: VendorState) -> None:
    app[VENDORS] = state
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", twilio_call_update)
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", twilio_messages)
    app.router.add_post("/_emulator/inbound", graph_open_window)
    app.router.add_post("/{version:v[0-9.]+}/{phone_id}/messages", graph_send)
    app.router.add_post("/v1/text-to-speech/{voice}/stream", elevenlabs_stream)

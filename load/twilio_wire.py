"""Twilio as the gateway sees it, from Twilio's side: the webhook signature Twilio puts on
its requests, the Media Streams messages Twilio sends, and the TwiML it reads.

`load` talks to the gateway only over the network, so it speaks the protocol on its own
instead of borrowing the gateway's codecs; the end-to-end tests are where the two sides
are proved to agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


def signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    """X-Twilio-Signature: HMAC-SHA1 of the URL followed by each name and value, sorted."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Twiml:
    stream_url: str | None
    parameters: dict[str, str] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    hangs_up: bool = False


def parse_twiml(text: str) -> Twiml:
    if "<!DOCTYPE" in text or "<!ENTITY" in text or len(text) > 64_000:
        raise ValueError("refusing TwiML with a DOCTYPE, entities, or of this size")
    root = ET.fromstring(text)  # noqa: S314 - checked above: no DTD, bounded size
    stream = root.find("./Connect/Stream")
    parameters = {} if stream is None else {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return Twiml(None if stream is None else stream.get("url"), parameters,
                 [say.text or "" for say in root.iter("Say")],
                 root.find("Hangup") is not None)


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def connected() -> str:
    return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(stream_sid: str, call_sid: str, account_sid: str,
          parameters: Mapping[str, str]) -> str:
    return _dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"streamSid": stream_sid, "accountSid": account_sid, "callSid": call_sid,
                  "tracks": ["inbound"], "customParameters": dict(parameters),
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                  "channels": 1}}})


def media(stream_sid: str, sequence: int, chunk: int, timestamp_ms: int,
          mulaw: bytes) -> str:
    return _dumps({"event": "media", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                   "media": {"track": "inbound", "chunk": str(chunk),
                             "timestamp": str(timestamp_ms),
                             "payload": base64.b64encode(mulaw).decode()}})


def mark(stream_sid: str, sequence: int, name: str) -> str:
    return _dumps({"event": "mark", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                   "mark": {"name": name}})


def dtmf(stream_sid: str, sequence: int, digit: str) -> str:
    return _dumps({"event": "dtmf", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                   "dtmf": {"track": "inbound_track", "digit": digit}})


def stop(stream_sid: str, sequence: int, call_sid: str, account_sid: str) -> str:
    return _dumps({"event": "stop", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                   "stop": {"accountSid": account_sid, "callSid": call_sid}})


@dataclass(frozen=True)
class Outbound:
    """A message from the gateway: `media` (audio set), `mark` (name set) or `clear`."""

    event: str
    audio: bytes = b""
    name: str = ""


def parse_outbound(text: str | bytes) -> Outbound:
    message = orjson.loads(text)
    event = message.get("event") if isinstance(message, dict) else None
    if event == "media":
        return Outbound("media", audio=base64.b64decode(message["media"]["payload"],
                                                        validate=True))
    if event == "mark":
        return Outbound("mark", name=str(message["mark"]["name"]))
    if event == "clear":
        return Outbound("clear")
    raise ValueError(f"unexpected message from the gateway: {str(text)[:80]}")

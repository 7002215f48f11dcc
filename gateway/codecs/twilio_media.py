"""The Twilio Media Streams websocket protocol, the gateway's side (`<Connect><Stream>`).

`MediaStreamParser` is fed each text message Twilio sends and returns a typed event; it
enforces what the rest of the gateway relies on (sizes, field types, `start` once and first,
one streamSid, increasing sequence numbers) and raises a `MediaStreamError` whose
`close_code` the websocket handler closes with. `encode_media`, `encode_mark` and
`encode_clear` build what we send back. The other direction (acting as Twilio, for the
simulated caller) is `load/twilio_wire.py`, which may not import the gateway; the tests
in tests/gateway/codecs prove the two sides agree.

Message shapes follow https://www.twilio.com/docs/voice/media-streams/websocket-messages.
Counters (sequenceNumber, chunk, timestamp) arrive as decimal strings; JSON integers are
accepted too, since emulators send them and nothing is lost.

Unknown events: `receive` returns None and the stream goes on. Twilio may add events to
the protocol, and closing every live call the day it ships one would be worse than
skipping a message we cannot use. (Nothing may follow `stop`, unknown events included.)
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

from gateway.codecs._fields import (
    decode_base64,
    get_int,
    get_object,
    get_optional_int,
    get_str,
    get_str_list,
    get_str_map,
    load_object,
    short,
)
from gateway.codecs.exceptions import MalformedMessage, OutOfOrder

__all__ = [
    "DTMF_DIGITS",
    "Connected",
    "Dtmf",
    "InboundEvent",
    "Mark",
    "Media",
    "MediaStreamParser",
    "Start",
    "Stop",
    "encode_clear",
    "encode_mark",
    "encode_media",
    "media_encoder",
]

DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    # The <Parameter>s of the TwiML, echoed back; our session token rides here.
    custom_parameters: dict[str, str] = field(hash=False)
    encoding: str
    sample_rate: int
    channels: int
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    sequence_number: int | None
    chunk: int
    timestamp_ms: int  # since the stream started
    track: str  # "inbound" (the caller) or "outbound" (what we played)
    payload: bytes  # mu-law, 8 kHz, mono, decoded from base64


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    sequence_number: int | None
    track: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio's echo of a mark we sent: the audio queued before it has played (or was
    dropped by `clear`)."""

    stream_sid: str
    sequence_number: int | None
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    sequence_number: int | None
    account_sid: str
    call_sid: str


InboundEvent: TypeAlias = Connected | Start | Media | Dtmf | Mark | Stop
_Reader: TypeAlias = Callable[[dict[str, Any], int], InboundEvent]


def _read_connected(message: dict[str, Any], _max_payload: int) -> Connected:
    return Connected(
        protocol=get_str(message, "protocol", "protocol"),
        version=get_str(message, "version", "version"),
    )


def _read_start(message: dict[str, Any], _max_payload: int) -> Start:
    start = get_object(message, "start", "start")
    stream_sid = get_str(start, "streamSid", "start.streamSid")
    outer = get_str(message, "streamSid", "streamSid") if "streamSid" in message else stream_sid
    if outer != stream_sid:
        raise MalformedMessage(
            f"streamSid {short(outer)} differs from start.streamSid {short(stream_sid)}"
        )
    media_format = get_object(start, "mediaFormat", "start.mediaFormat")
    has_parameters = "customParameters" in start
    return Start(
        stream_sid=stream_sid,
        call_sid=get_str(start, "callSid", "start.callSid"),
        account_sid=get_str(start, "accountSid", "start.accountSid"),
        tracks=get_str_list(start, "tracks", "start.tracks"),
        custom_parameters=(
            get_str_map(start, "customParameters", "start.customParameters")
            if has_parameters
            else {}
        ),
        encoding=get_str(media_format, "encoding", "start.mediaFormat.encoding"),
        sample_rate=get_int(media_format, "sampleRate", "start.mediaFormat.sampleRate"),
        channels=get_int(media_format, "channels", "start.mediaFormat.channels"),
        sequence_number=get_optional_int(message, "sequenceNumber", "sequenceNumber"),
    )


def _read_media(message: dict[str, Any], max_payload: int) -> Media:
    media = get_object(message, "media", "media")
    payload = get_str(media, "payload", "media.payload")
    return Media(
        stream_sid=get_str(message, "streamSid", "streamSid"),
        sequence_number=get_optional_int(message, "sequenceNumber", "sequenceNumber"),
        chunk=get_int(media, "chunk", "media.chunk"),
        timestamp_ms=get_int(media, "timestamp", "media.timestamp"),
        track=get_str(media, "track", "media.track"),
        payload=decode_base64(payload, "media.payload", max_payload),
    )


def _read_dtmf(message: dict[str, Any], _max_payload: int) -> Dtmf:
    dtmf = get_object(message, "dtmf", "dtmf")
    digit = get_str(dtmf, "digit", "dtmf.digit")
    if digit not in DTMF_DIGITS:
        raise MalformedMessage(f"dtmf.digit: expected one of 0-9 * # A-D, got {short(digit)}")
    return Dtmf(
        stream_sid=get_str(message, "streamSid", "streamSid"),
        sequence_number=get_optional_int(message, "sequenceNumber", "sequenceNumber"),
        track=get_str(dtmf, "track", "dtmf.track"),
        digit=digit,
    )


def _read_mark(message: dict[str, Any], _max_payload: int) -> Mark:
    return Mark(
        stream_sid=get_str(message, "streamSid", "streamSid"),
        sequence_number=get_optional_int(message, "sequenceNumber", "sequenceNumber"),
        name=get_str(get_object(message, "mark", "mark"), "name", "mark.name"),
    )


def _read_stop(message: dict[str, Any], _max_payload: int) -> Stop:
    stop = get_object(message, "stop", "stop")
    return Stop(
        stream_sid=get_str(message, "streamSid", "streamSid"),
        sequence_number=get_optional_int(message, "sequenceNumber", "sequenceNumber"),
        account_sid=get_str(stop, "accountSid", "stop.accountSid"),
        call_sid=get_str(stop, "callSid", "stop.callSid"),
    )


_READERS: dict[str, _Reader] = {
    "connected": _read_connected,
    "start": _read_start,
    "media": _read_media,
    "dtmf": _read_dtmf,
    "mark": _read_mark,
    "stop": _read_stop,
}


class MediaStreamParser:
    """One stream's inbound side. Feed every text message to `receive`; after it raises,
    close the websocket with the error's `close_code` and drop the parser.

    A message that raises leaves the parser's state as it was."""

    def __init__(self, max_message_bytes: int = 8192, max_payload_bytes: int = 4000) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_payload_bytes = max_payload_bytes
        self.started: Start | None = None
        self.stopped = False
        self._connected = False
        self._last_sequence: int | None = None

    def receive(self, text: str | bytes) -> InboundEvent | None:
        """The event in `text`, or None for an event this codec does not know."""
        message = load_object(text, self.max_message_bytes)
        name = message.get("event")
        if not isinstance(name, str):
            raise MalformedMessage(f"event: expected a string, got {short(name)}")
        if self.stopped:
            raise OutOfOrder(f"{short(name)} after stop")
        reader = _READERS.get(name)
        if reader is None:
            return None
        self._check_order(name)
        event = reader(message, self.max_payload_bytes)
        if not isinstance(event, Connected):
            self._check_stream(event)
            self._check_sequence(event.sequence_number)
            if event.sequence_number is not None:
                self._last_sequence = event.sequence_number
        if isinstance(event, Connected):
            self._connected = True
        elif isinstance(event, Start):
            self.started = event
        elif isinstance(event, Stop):
            self.stopped = True
        return event

    def _check_order(self, name: str) -> None:
        if name == "connected":
            if self.started is not None:
                raise OutOfOrder("connected after start")
            if self._connected:
                raise OutOfOrder("a second connected")
        elif name == "start":
            if self.started is not None:
                raise OutOfOrder("a second start")
        elif self.started is None:
            raise OutOfOrder(f"{name} before start")

    def _check_stream(self, event: Start | Media | Dtmf | Mark | Stop) -> None:
        if self.started is not None and event.stream_sid != self.started.stream_sid:
            raise OutOfOrder(
                f"streamSid {short(event.stream_sid)} differs from "
                f"{short(self.started.stream_sid)} given in start"
            )

    def _check_sequence(self, number: int | None) -> None:
        last = self._last_sequence
        if number is not None and last is not None and number <= last:
            raise OutOfOrder(f"sequenceNumber {number} after {last}: must increase")


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode("utf-8")


def encode_media(stream_sid: str, mulaw: bytes) -> str:
    """Audio for Twilio to play to the caller: mu-law, 8 kHz, mono, no header."""
    return media_encoder(stream_sid)(mulaw)


def media_encoder(stream_sid: str) -> Callable[[bytes], str]:
    """`encode_media` for one stream, fast: the message is a template around the payload
    (the stream id JSON-escaped once), sent 50 times a second per call."""
    prefix = ('{"event":"media","streamSid":' + orjson.dumps(stream_sid).decode()
              + ',"media":{"payload":"')

    def encode(mulaw: bytes) -> str:
        return prefix + b2a_base64(mulaw, newline=False).decode("ascii") + '"}}'

    return encode


def encode_mark(stream_sid: str, name: str) -> str:
    """Asks Twilio to echo a `mark` with this name once the audio sent before it has played."""
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def encode_clear(stream_sid: str) -> str:
    """Drops the audio Twilio has buffered but not played (barge-in); pending marks echo."""
    return _dumps({"event": "clear", "streamSid": stream_sid})

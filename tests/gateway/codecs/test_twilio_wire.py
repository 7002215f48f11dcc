"""The two sides of Media Streams agree: what the simulated caller (`load.twilio_wire`, which
may not import the gateway) sends as Twilio is what the gateway's `MediaStreamParser` reads,
and what the gateway's `encode_*` send is what the caller reads as Twilio would."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs.twilio_media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamParser,
    Start,
    Stop,
    encode_clear,
    encode_mark,
    encode_media,
)
from load import twilio_wire
from load.twilio_wire import Outbound
from tests.gateway.codecs import vectors as v

DOC_AUDIO = base64.b64decode(v.DOC_PAYLOAD)
SID, CALL, ACCOUNT = "MZabc", "CAabc", "ACabc"

# --- outbound: the gateway's encoders -> Twilio's side -------------------------------------


def test_encode_media_matches_documented_shape() -> None:
    assert orjson.loads(encode_media(v.STREAM_SID, DOC_AUDIO)) == json.loads(v.OUTBOUND_MEDIA)


def test_encode_mark_matches_documented_shape() -> None:
    assert orjson.loads(encode_mark(v.STREAM_SID, "my label")) == json.loads(v.OUTBOUND_MARK)


def test_encode_clear_matches_documented_shape() -> None:
    assert orjson.loads(encode_clear(v.STREAM_SID)) == json.loads(v.OUTBOUND_CLEAR)


def test_caller_reads_documented_vectors() -> None:
    assert twilio_wire.parse_outbound(v.OUTBOUND_MEDIA) == Outbound("media", audio=DOC_AUDIO)
    assert twilio_wire.parse_outbound(v.OUTBOUND_MARK) == Outbound("mark", name="my label")
    assert twilio_wire.parse_outbound(v.OUTBOUND_CLEAR) == Outbound("clear")


def test_outbound_round_trip() -> None:
    audio = bytes(range(256))
    assert twilio_wire.parse_outbound(encode_media("MZ1", audio)) == Outbound("media", audio)
    name = 'reply "1" <&> ünïcode'
    assert twilio_wire.parse_outbound(encode_mark("MZ1", name)) == Outbound("mark", name=name)
    assert twilio_wire.parse_outbound(encode_clear("MZ1").encode()) == Outbound("clear")


@given(st.binary(max_size=4000), st.text(max_size=64))
def test_outbound_round_trip_any_audio_and_mark(audio: bytes, name: str) -> None:
    assert twilio_wire.parse_outbound(encode_media("MZ1", audio)) == Outbound("media", audio)
    assert twilio_wire.parse_outbound(encode_mark("MZ1", name)) == Outbound("mark", name=name)


@pytest.mark.parametrize(
    "text",
    [
        '{"event": "hello", "streamSid": "MZ1"}',
        '{"streamSid": "MZ1"}',
        "[]",
        '{"event": "media", "streamSid": "MZ1", "media": {"payload": "@@"}}',
    ],
)
def test_caller_refuses_what_the_gateway_never_sends(text: str) -> None:
    with pytest.raises(ValueError):
        twilio_wire.parse_outbound(text)


# --- inbound: Twilio's side -> the gateway's parser ----------------------------------------


def test_inbound_round_trip() -> None:
    parser = MediaStreamParser()
    parameters = {"token": "v1.a.b", "note": "ünïcode <&>"}
    texts = [
        twilio_wire.connected(),
        twilio_wire.start(SID, CALL, ACCOUNT, parameters),
        twilio_wire.media(SID, 2, 1, 0, b"\x7f" * 160),
        twilio_wire.media(SID, 3, 2, 20, b"\xff" * 160),
        twilio_wire.dtmf(SID, 4, "#"),
        twilio_wire.mark(SID, 5, "a200"),
        twilio_wire.stop(SID, 6, CALL, ACCOUNT),
    ]
    events = [parser.receive(text) for text in texts]
    assert events == [
        Connected("Call", "1.0.0"),
        Start(SID, CALL, ACCOUNT, ("inbound",), parameters, "audio/x-mulaw", 8000, 1, 1),
        Media(SID, 2, 1, 0, "inbound", b"\x7f" * 160),
        Media(SID, 3, 2, 20, "inbound", b"\xff" * 160),
        Dtmf(SID, 4, "inbound_track", "#"),
        Mark(SID, 5, "a200"),
        Stop(SID, 6, ACCOUNT, CALL),
    ]
    assert parser.stopped


@given(st.binary(min_size=1, max_size=4000), st.integers(0, 2**31), st.integers(1, 2**31))
def test_inbound_media_round_trip_any_audio(audio: bytes, timestamp: int, chunk: int) -> None:
    parser = MediaStreamParser()
    parser.receive(twilio_wire.start(SID, CALL, ACCOUNT, {}))
    event = parser.receive(twilio_wire.media(SID, 2, chunk, timestamp, audio))
    assert event == Media(SID, 2, chunk, timestamp, "inbound", audio)


def test_a_real_frame_fits_the_gateways_caps() -> None:
    # A 20 ms frame with the longest SIDs and counters Twilio uses stays far below the
    # parser's default message cap (8 KiB): the caps refuse abuse, never a real caller.
    frame = twilio_wire.media("MZ" + "f" * 32, 2**31, 2**31, 2**31, b"\x00" * 160)
    assert len(frame) < MediaStreamParser().max_message_bytes // 8

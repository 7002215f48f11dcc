"""The gateway's Media Streams parser: documented vectors, and every way a stream is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from gateway.codecs.exceptions import (
    CodecError,
    MalformedMessage,
    MediaStreamError,
    MessageTooBig,
    OutOfOrder,
)
from gateway.codecs.twilio_media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamParser,
    Start,
    Stop,
    media_encoder,
)
from tests.gateway.codecs import vectors as v

DOC_AUDIO = base64.b64decode(v.DOC_PAYLOAD)


def started() -> MediaStreamParser:
    parser = MediaStreamParser()
    parser.receive(v.CONNECTED)
    parser.receive(v.START)
    return parser


def message(text: str, **changes: Any) -> str:
    """A vector with top-level fields replaced (None deletes the field)."""
    data = json.loads(text)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


# --- documented vectors ----------------------------------------------------------------------


def test_connected_vector() -> None:
    parser = MediaStreamParser()
    assert parser.receive(v.CONNECTED) == Connected(protocol="Call", version="1.0.0")
    assert parser.started is None


def test_start_vector() -> None:
    parser = MediaStreamParser()
    start = parser.receive(v.START)
    assert start == Start(
        stream_sid=v.STREAM_SID,
        call_sid=v.CALL_SID,
        account_sid=v.ACCOUNT_SID,
        tracks=("inbound",),
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        encoding="audio/x-mulaw",
        sample_rate=8000,
        channels=1,
        sequence_number=1,
    )
    assert parser.started is start
    assert not parser.stopped


def test_media_vector() -> None:
    assert started().receive(v.MEDIA) == Media(
        stream_sid=v.STREAM_SID,
        sequence_number=3,
        chunk=1,
        timestamp_ms=5,
        track="inbound",
        payload=DOC_AUDIO,
    )
    assert len(DOC_AUDIO) == 1024


def test_dtmf_vector() -> None:
    assert started().receive(v.DTMF) == Dtmf(
        stream_sid=v.STREAM_SID, sequence_number=5, track="inbound_track", digit="1"
    )


def test_mark_vector() -> None:
    assert started().receive(v.MARK) == Mark(
        stream_sid=v.STREAM_SID, sequence_number=4, name="my label"
    )


def test_stop_vector() -> None:
    parser = started()
    assert parser.receive(v.STOP) == Stop(
        stream_sid=v.STREAM_SID, sequence_number=5, account_sid=v.ACCOUNT_SID, call_sid=v.CALL_SID
    )
    assert parser.stopped


def test_whole_documented_stream_in_order() -> None:
    parser = MediaStreamParser()
    kinds = [type(parser.receive(text)) for text in (v.CONNECTED, v.START, v.MEDIA, v.MARK)]
    kinds.append(type(parser.receive(message(v.STOP, sequenceNumber="6"))))
    assert kinds == [Connected, Start, Media, Mark, Stop]


def test_bytes_are_accepted_like_text() -> None:
    assert started().receive(v.MEDIA.encode()) == started().receive(v.MEDIA)


def test_start_without_connected_and_without_custom_parameters() -> None:
    data = json.loads(v.START)
    del data["start"]["customParameters"]
    start = MediaStreamParser().receive(json.dumps(data))
    assert isinstance(start, Start)
    assert start.custom_parameters == {}


def test_integer_counters_and_missing_sequence_numbers_are_accepted() -> None:
    parser = started()
    data = json.loads(v.MEDIA)
    data["media"]["chunk"], data["media"]["timestamp"] = 2, 40
    del data["sequenceNumber"]
    media = parser.receive(json.dumps(data))
    assert isinstance(media, Media)
    assert (media.sequence_number, media.chunk, media.timestamp_ms) == (None, 2, 40)


def test_unknown_events_are_ignored() -> None:
    parser = MediaStreamParser()
    assert parser.receive('{"event": "newThing", "whatever": [1, 2]}') is None
    parser.receive(v.START)
    assert parser.receive('{"event": "newThing", "streamSid": "MZother"}') is None
    assert isinstance(parser.receive(v.MEDIA), Media)


def test_start_is_hashable_despite_its_parameters() -> None:
    start = MediaStreamParser().receive(v.START)
    assert isinstance(start, Start)
    assert hash(start) == hash(start)


# --- error paths ---------------------------------------------------------------------------


def start_with(**inner: Any) -> str:
    data = json.loads(v.START)
    for key, value in inner.items():
        if value is None:
            del data["start"][key]
        else:
            data["start"][key] = value
    return json.dumps(data)


def media_with(**inner: Any) -> str:
    data = json.loads(v.MEDIA)
    data["media"].update(inner)
    return json.dumps(data)


# (case, text or bytes, what the error names). Start and connected messages go to a fresh
# parser, everything else to one that has seen the documented start.
MALFORMED: list[tuple[str, str | bytes, str]] = [
    ("not JSON", "{event: media}", "not JSON"),
    ("truncated JSON", v.MEDIA[:-3], "not JSON"),
    ("invalid UTF-8", b'{"event": "\xff"}', "not JSON"),
    ("lone surrogate", '{"event": "\ud800"}', "not JSON"),
    ("JSON array", '["event", "media"]', "expected a JSON object, got list"),
    ("JSON string", '"media"', "expected a JSON object, got str"),
    ("no event", '{"streamSid": "MZ1"}', "event: expected a string, got None"),
    ("event not a string", '{"event": 7}', "event: expected a string, got 7"),
    ("media missing", message(v.MEDIA, media=None), "media: missing"),
    ("media not an object", message(v.MEDIA, media="x"), "media: expected an object"),
    ("streamSid missing", message(v.MEDIA, streamSid=None), "streamSid: missing"),
    ("streamSid not a string", message(v.MEDIA, streamSid=5), "streamSid: expected a string"),
    ("payload not a string", media_with(payload=None), "media.payload: expected a string"),
    ("chunk not a number", media_with(chunk="one"), "media.chunk: expected a non-negative"),
    ("timestamp negative", media_with(timestamp=-5), "media.timestamp: expected a non-negative"),
    ("timestamp a float", media_with(timestamp="5.0"), "media.timestamp"),
    ("timestamp a bool", media_with(timestamp=True), "media.timestamp"),
    ("unicode digits", media_with(chunk="\u0661\u0662"), "media.chunk"),
    ("huge counter", media_with(chunk="9" * 40), "media.chunk"),
    ("sequenceNumber wrong", message(v.MEDIA, sequenceNumber="3a"), "sequenceNumber"),
    ("bad base64 alphabet", media_with(payload="ab$d"), "media.payload: invalid base64"),
    ("bad base64 padding", media_with(payload="abc"), "media.payload: invalid base64"),
    ("base64 with newline", media_with(payload="ab\ncd=="), "media.payload: invalid base64"),
    ("non-ASCII base64", media_with(payload="\u00e9bcd"), "media.payload: invalid base64"),
    ("dtmf digit", message(v.DTMF, dtmf={"track": "inbound_track", "digit": "12"}), "dtmf.digit"),
    ("mark without name", message(v.MARK, mark={}), "mark.name: missing"),
    ("stop without callSid", message(v.STOP, stop={"accountSid": "AC1"}), "stop.callSid"),
    ("tracks not a list", start_with(tracks="inbound"), "start.tracks"),
    (
        "sample rate text",
        start_with(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": "fast", "channels": 1}),
        "start.mediaFormat.sampleRate",
    ),
    ("parameter not text", start_with(customParameters={"a": 1}), "start.customParameters.a"),
    ("callSid missing", start_with(callSid=None), "start.callSid: missing"),
    (
        "streamSids disagree",
        message(v.START, streamSid="MZother"),
        "streamSid 'MZother' differs from start.streamSid",
    ),
    ("connected without version", '{"event": "connected", "protocol": "Call"}', "version"),
]


@pytest.mark.parametrize(("case", "raw", "detail"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_messages(case: str, raw: str | bytes, detail: str) -> None:
    opening = isinstance(raw, str) and raw.startswith(('{"event": "start"', '{"event": "conn'))
    parser = MediaStreamParser() if opening else started()
    with pytest.raises(MalformedMessage) as caught:
        parser.receive(raw)
    assert caught.value.close_code == 1007
    assert detail in str(caught.value)


def test_oversized_message() -> None:
    parser = MediaStreamParser(max_message_bytes=1000)
    parser.receive(v.START)
    with pytest.raises(MessageTooBig) as caught:
        parser.receive(v.MEDIA)
    assert caught.value.close_code == 1009


def test_oversized_message_counts_utf8_bytes() -> None:
    parser = MediaStreamParser(max_message_bytes=100)
    text = '{"event": "x", "pad": "' + "é" * 40 + '"}'  # 63 characters, 103 bytes
    assert len(text) <= 100
    with pytest.raises(MessageTooBig):
        parser.receive(text)


def test_oversized_payload() -> None:
    parser = MediaStreamParser(max_payload_bytes=1000)
    parser.receive(v.START)
    with pytest.raises(MessageTooBig, match="media.payload") as caught:
        parser.receive(v.MEDIA)  # 1024 bytes of audio
    assert caught.value.close_code == 1009


def test_payload_exactly_at_the_cap_passes() -> None:
    parser = MediaStreamParser(max_payload_bytes=1024)
    parser.receive(v.START)
    assert isinstance(parser.receive(v.MEDIA), Media)


OUT_OF_ORDER: list[tuple[str, list[str], str, str]] = [
    ("media before start", [v.CONNECTED], v.MEDIA, "media before start"),
    ("dtmf before start", [], v.DTMF, "dtmf before start"),
    ("mark before start", [], v.MARK, "mark before start"),
    ("stop before start", [v.CONNECTED], v.STOP, "stop before start"),
    ("second start", [v.START], message(v.START, sequenceNumber="2"), "a second start"),
    ("connected after start", [v.START], v.CONNECTED, "connected after start"),
    ("second connected", [v.CONNECTED], v.CONNECTED, "a second connected"),
    (
        "media after stop",
        [v.START, v.STOP],
        message(v.MEDIA, sequenceNumber="9"),
        "'media' after stop",
    ),
    ("unknown event after stop", [v.START, v.STOP], '{"event": "later"}', "'later' after stop"),
    ("stop after stop", [v.START, v.STOP], message(v.STOP, sequenceNumber="6"), "after stop"),
    (
        "streamSid mismatch",
        [v.START],
        message(v.MEDIA, streamSid="MZother"),
        f"streamSid 'MZother' differs from '{v.STREAM_SID}' given in start",
    ),
    ("sequenceNumber repeated", [v.START, v.MEDIA], v.MEDIA, "sequenceNumber 3 after 3"),
    ("sequenceNumber going back", [v.START, v.DTMF], v.MARK, "sequenceNumber 4 after 5"),
    (
        "sequenceNumber not above start's",
        [v.START],
        message(v.MEDIA, sequenceNumber="1"),
        "sequenceNumber 1 after 1",
    ),
]


@pytest.mark.parametrize(
    ("case", "before", "text", "detail"), OUT_OF_ORDER, ids=[o[0] for o in OUT_OF_ORDER]
)
def test_out_of_order(case: str, before: list[str], text: str, detail: str) -> None:
    parser = MediaStreamParser()
    for earlier in before:
        parser.receive(earlier)
    with pytest.raises(OutOfOrder) as caught:
        parser.receive(text)
    assert caught.value.close_code == 1002
    assert detail in str(caught.value)


def test_a_refused_message_leaves_the_state_alone() -> None:
    parser = started()
    with pytest.raises(MalformedMessage):
        parser.receive(media_with(payload="!!!!", chunk="2"))
    with pytest.raises(OutOfOrder):
        parser.receive(message(v.STOP, streamSid="MZother", sequenceNumber="9"))
    assert not parser.stopped
    assert isinstance(parser.receive(v.MEDIA), Media)  # sequenceNumber 3 still fresh


def test_every_stream_error_is_a_codec_error_and_a_value_error() -> None:
    for error in (MalformedMessage, MessageTooBig, OutOfOrder):
        assert issubclass(error, MediaStreamError)
        assert issubclass(error, CodecError)
        assert issubclass(error, ValueError)
    codes = {e.__name__: e.close_code for e in (MalformedMessage, MessageTooBig, OutOfOrder)}
    assert codes == {"MalformedMessage": 1007, "MessageTooBig": 1009, "OutOfOrder": 1002}


def test_close_reason_fits_a_close_frame() -> None:
    parser = started()
    with pytest.raises(OutOfOrder) as caught:
        parser.receive(message(v.MEDIA, streamSid="MZ" + "é" * 200))
    assert len(caught.value.close_reason.encode()) <= 123
    assert caught.value.close_reason.startswith("streamSid 'MZé")


@pytest.mark.parametrize("sid", ["MZ" + "a" * 32, 'MZ"quoted\\back', "MZ\u00e9\u2028\n"])
def test_the_media_template_is_the_json_of_the_message(sid: str) -> None:
    """`media_encoder` (a template, for speed) says exactly what the JSON of the message
    says, whatever the stream id holds."""
    encode = media_encoder(sid)
    for audio in (b"", b"\xff" * 160, bytes(range(256))):
        assert orjson.loads(encode(audio)) == {
            "event": "media", "streamSid": sid,
            "media": {"payload": base64.b64encode(audio).decode()}}

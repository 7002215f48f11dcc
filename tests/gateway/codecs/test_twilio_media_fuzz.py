"""Hammering the gateway's Media Streams parser: whatever arrives, it returns an event (or
None for an unknown event) or raises a CodecError, never anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs.exceptions import CodecError, MediaStreamError
from gateway.codecs.twilio_media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamParser,
    Start,
    Stop,
)
from tests.gateway.codecs import vectors as v

EVENTS = (Connected, Start, Media, Dtmf, Mark, Stop)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["1", "0", "-1", "8000", "inbound", "MZ1", "AAAA", "//8=", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "event",
    "streamSid",
    "sequenceNumber",
    "start",
    "media",
    "dtmf",
    "mark",
    "stop",
    "protocol",
    "version",
]
EVENT_NAMES = ["connected", "start", "media", "dtmf", "mark", "stop", "clear", "other"]

# Objects that look like protocol messages: a known event and known field names with arbitrary
# values, so the fuzzer gets past the first checks and into the field readers.
protocol_like = st.builds(
    lambda event, rest: {"event": event, **rest},
    st.sampled_from(EVENT_NAMES),
    st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=5),
)

VALID: list[dict[str, Any]] = [
    json.loads(text) for text in (v.CONNECTED, v.START, v.MEDIA, v.DTMF, v.MARK, v.STOP)
]


def paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths(item, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A documented message with one field replaced by an arbitrary value, or deleted."""
    original = draw(st.sampled_from(VALID))
    data: dict[str, Any] = json.loads(json.dumps(original))
    path = draw(st.sampled_from(paths(data)))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return data


def feed(parser: MediaStreamParser, raw: str | bytes) -> None:
    try:
        event = parser.receive(raw)
    except MediaStreamError as exc:
        assert exc.close_code in (1002, 1007, 1009)
        return
    assert event is None or isinstance(event, EVENTS)


def fresh_and_started() -> list[MediaStreamParser]:
    started = MediaStreamParser()
    started.receive(v.START)
    return [MediaStreamParser(), started]


@FUZZ
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_text_and_bytes(raw: str | bytes) -> None:
    for parser in fresh_and_started():
        feed(parser, raw)


@FUZZ
@given(st.one_of(st.dictionaries(st.text(max_size=12), json_values), protocol_like, mutated()))
def test_arbitrary_objects(message: dict[str, Any]) -> None:
    raw = json.dumps(message)  # stdlib json: integers beyond 64 bits reach the parser too
    for parser in fresh_and_started():
        feed(parser, raw)
        feed(parser, raw.encode())


@FUZZ
@given(st.lists(st.one_of(protocol_like, mutated(), st.sampled_from(VALID)), max_size=12))
def test_arbitrary_sequences_through_one_parser(messages: list[dict[str, Any]]) -> None:
    parser = MediaStreamParser()
    for message in messages:
        try:
            parser.receive(json.dumps(message))
        except CodecError:
            return

"""TwiML builders escape everything they are given; the reader refuses what it must."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gateway.codecs import twiml
from gateway.codecs.exceptions import TwimlError
from gateway.codecs.twiml import (
    XML_DECLARATION,
    connect_stream,
    dial,
    empty,
    message,
    parse_stream_twiml,
    say_and_hangup,
)

NASTY = 'Tom & Jerry say "hi" <Hangup/> it\'s </Say><Dial>+1900</Dial>'


def parse(document: str) -> ET.Element:
    assert document.startswith(XML_DECLARATION)
    return ET.fromstring(document)  # noqa: S314 - our own output


def test_empty() -> None:
    assert empty() == '<?xml version="1.0" encoding="UTF-8"?><Response />'


def test_say_and_hangup_escapes_text() -> None:
    document = say_and_hangup(NASTY, voice="Polly.Joanna")
    assert "&lt;Hangup/&gt;" in document and "Tom &amp; Jerry" in document
    root = parse(document)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root[0]
    assert say.text == NASTY
    assert say.attrib == {"language": "en-US", "voice": "Polly.Joanna"}


def test_say_without_voice_has_no_voice_attribute() -> None:
    assert "voice" not in parse(say_and_hangup("hello"))[0].attrib


def test_control_characters_are_dropped_from_prose() -> None:
    root = parse(say_and_hangup("a\x00b\x1bc\ud800d\ufffe\te"))
    assert root[0].text == "abcd\te"
    assert parse(message("x\x07y"))[0].text == "xy"


def test_connect_stream_escapes_attributes() -> None:
    parameters = {"token": "v1.abc.def", "note": NASTY, "multi": "a\nb"}
    document = connect_stream(
        "wss://gw.test/twilio/stream?a=1&b=2", parameters, status_callback="https://gw.test/s"
    )
    stream = parse(document).find("Connect/Stream")
    assert stream is not None
    assert stream.attrib == {
        "url": "wss://gw.test/twilio/stream?a=1&b=2",
        "statusCallback": "https://gw.test/s",
    }
    assert {p.get("name"): p.get("value") for p in stream} == parameters
    assert "&quot;hi&quot;" in document and "?a=1&amp;b=2" in document


def test_connect_stream_round_trips_through_the_reader() -> None:
    parameters = {"token": "v1.abc.def", "note": NASTY}
    url = "wss://gw.test/twilio/stream"
    assert parse_stream_twiml(connect_stream(url, parameters)) == (url, parameters)
    assert parse_stream_twiml(connect_stream(url, {}).encode()) == (url, {})


@pytest.mark.parametrize("url", ["https://gw.test/s", "gw.test/s", ""])
def test_connect_stream_wants_a_websocket_url(url: str) -> None:
    with pytest.raises(TwimlError, match="ws://"):
        connect_stream(url, {})


def test_attributes_refuse_characters_xml_cannot_carry() -> None:
    with pytest.raises(TwimlError, match="value"):
        connect_stream("wss://gw.test/s", {"token": "a\x00b"})
    with pytest.raises(TwimlError, match="number"):
        dial("+1555\x01")


def test_dial() -> None:
    root = parse(dial("+15551230000", caller_id="+15550001111", say_first=NASTY))
    assert [child.tag for child in root] == ["Say", "Dial"]
    assert root[0].text == NASTY
    assert root[1].attrib == {"callerId": "+15550001111"}
    number = root[1].find("Number")
    assert number is not None and number.text == "+15551230000"
    assert [child.tag for child in parse(dial("+15551230000"))] == ["Dial"]


def test_message_escapes_text() -> None:
    root = parse(message(NASTY))
    assert [child.tag for child in root] == ["Message"]
    assert root[0].text == NASTY


DOCTYPE_BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<Response><Connect><Stream url="wss://x/&lol2;"/></Connect></Response>"""


@pytest.mark.parametrize(
    "document",
    [
        DOCTYPE_BOMB,
        DOCTYPE_BOMB.encode(),
        "<!doctype Response><Response/>",
        '<Response><!ENTITY x "y"></Response>',
        DOCTYPE_BOMB.encode("utf-16"),  # a BOM: not UTF-8
        # No BOM, and valid UTF-8 (ASCII with NULs between): expat would read it as UTF-16
        # and see the DOCTYPE that a search of the text misses.
        DOCTYPE_BOMB.replace('version="1.0"', 'version="1.0" encoding="UTF-16LE"').encode(
            "utf-16-le"
        ),
    ],
)
def test_reader_refuses_doctype_and_entities(document: str | bytes) -> None:
    with pytest.raises(TwimlError):
        parse_stream_twiml(document)


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("<Response><Connect>", "not XML"),
        ("<Other/>", "not <Response>"),
        ("<Response><Say>hi</Say></Response>", "no <Connect><Stream"),
        ("<Response><Connect><Stream/></Connect></Response>", "no <Connect><Stream"),
        (
            '<Response><Connect><Stream url="wss://x"><Parameter value="v"/></Stream>'
            "</Connect></Response>",
            "without a name",
        ),
        ("<Response>" + " " * 70_000 + "</Response>", "exceeds"),
    ],
)
def test_reader_refusals(document: str, detail: str) -> None:
    with pytest.raises(TwimlError, match=detail):
        parse_stream_twiml(document)


@pytest.mark.parametrize(
    "document",
    [
        DOCTYPE_BOMB,
        '<!DOCTYPE r SYSTEM "http://x/"><r/>',
        DOCTYPE_BOMB.replace('version="1.0"', 'version="1.0" encoding="UTF-16LE"')
        .encode("utf-16-le")
        .decode("utf-8"),
    ],
)
def test_parser_hooks_refuse_declarations_the_text_check_would_miss(document: str) -> None:
    # The parser on its own, past the textual checks: defence in depth.
    with pytest.raises(TwimlError, match="refused"):
        twiml._parse(document)


def test_undefined_entities_are_not_resolved() -> None:
    with pytest.raises(TwimlError, match="undefined entity"):
        parse_stream_twiml('<Response><Connect><Stream url="&ext;"/></Connect></Response>')

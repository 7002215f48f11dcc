"""TwiML documents we answer Twilio's webhooks with, and a reader for the one the simulated
caller needs (`<Connect><Stream>`).

Every document is built as an ElementTree and serialised by it, so text and attribute values
are always escaped; no caller-supplied string is ever pasted into markup. Characters XML 1.0
forbids (NUL and most other C0 controls, lone surrogates) would make the whole document
unreadable to Twilio: in spoken or texted prose they are dropped (one stray control
character from a model must not cost the caller the reply), in attributes (URLs, numbers,
parameters) they raise TwimlError, since silently changing those would send the call to the
wrong place.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import NoReturn
from xml.parsers import expat

from gateway.codecs.exceptions import TwimlError

__all__ = [
    "XML_DECLARATION",
    "connect_stream",
    "dial",
    "empty",
    "message",
    "parse_stream_twiml",
    "say_and_hangup",
]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
MAX_PARSE_BYTES = 64 * 1024
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REFUSED_MARKUP = ("<!DOCTYPE", "<!ENTITY")


def _prose(text: str) -> str:
    return _NOT_XML_CHAR.sub("", text)


def _attrs(**attrs: str | None) -> dict[str, str]:
    """The attributes that have a value, refusing any XML cannot carry."""
    kept = {name: value for name, value in attrs.items() if value is not None}
    for name, value in kept.items():
        if _NOT_XML_CHAR.search(value):
            raise TwimlError(f"{name}: contains a character XML cannot carry")
    return kept


def _document(response: ET.Element) -> str:
    return XML_DECLARATION + ET.tostring(response, encoding="unicode")


def _say(parent: ET.Element, text: str, language: str, voice: str | None) -> None:
    say = ET.SubElement(parent, "Say", _attrs(language=language, voice=voice))
    say.text = _prose(text)


def say_and_hangup(text: str, *, language: str = "en-US", voice: str | None = None) -> str:
    """Speaks `text` and ends the call (no credit, closed line, an error we cannot hide)."""
    response = ET.Element("Response")
    _say(response, text, language, voice)
    ET.SubElement(response, "Hangup")
    return _document(response)


def connect_stream(
    url: str, parameters: Mapping[str, str], *, status_callback: str | None = None
) -> str:
    """Opens a bidirectional Media Stream to `url` (ws:// or wss://). Twilio echoes each
    parameter back in the stream's `start.customParameters`."""
    if not url.startswith(("wss://", "ws://")):
        raise TwimlError("url: a Media Stream needs a ws:// or wss:// URL")
    response = ET.Element("Response")
    connect = ET.SubElement(response, "Connect")
    stream = ET.SubElement(connect, "Stream", _attrs(url=url, statusCallback=status_callback))
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", _attrs(name=name, value=value))
    return _document(response)


def dial(
    number: str,
    *,
    caller_id: str | None = None,
    say_first: str | None = None,
    language: str = "en-US",
) -> str:
    """Transfers the caller to `number` (a human), optionally saying something first."""
    response = ET.Element("Response")
    if say_first is not None:
        _say(response, say_first, language, None)
    dial_verb = ET.SubElement(response, "Dial", _attrs(callerId=caller_id))
    ET.SubElement(dial_verb, "Number").text = _attrs(number=number)["number"]
    return _document(response)


def message(text: str) -> str:
    """Replies to an incoming SMS with `text`."""
    response = ET.Element("Response")
    ET.SubElement(response, "Message").text = _prose(text)
    return _document(response)


def empty() -> str:
    """Acknowledges a webhook without doing anything."""
    return _document(ET.Element("Response"))


def _refuse_declaration(*_args: object) -> NoReturn:
    raise TwimlError("DOCTYPE and ENTITY declarations are refused")


def _parse(text: str) -> ET.Element:
    """Expat, told the document is UTF-8 whatever it declares, building an ElementTree, with
    every DTD hook refusing as defusedxml's do. ElementTree's own parser exposes no hooks,
    and the textual check in `parse_stream_twiml` alone would miss markup in an encoding
    the parser switched to (a UTF-16 declaration without a BOM)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(encoding="utf-8")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.UnparsedEntityDeclHandler = _refuse_declaration
    parser.ExternalEntityRefHandler = _refuse_declaration
    try:
        parser.Parse(text.encode("utf-8"), True)
        return builder.close()
    except (expat.ExpatError, AssertionError) as exc:  # AssertionError: TreeBuilder, no root
        raise TwimlError(f"not XML: {exc}") from exc


def parse_stream_twiml(
    xml: str | bytes, *, max_bytes: int = MAX_PARSE_BYTES
) -> tuple[str, dict[str, str]]:
    """The stream URL and parameters of a `<Response><Connect><Stream>` document.

    Refuses documents over `max_bytes`, not UTF-8, or with any DOCTYPE or entity
    declaration: defusedxml is not available, and TwiML never needs either (no billion
    laughs, no external entities)."""
    if len(xml) > max_bytes:
        raise TwimlError(f"document of {len(xml)}+ bytes exceeds {max_bytes}")
    if isinstance(xml, bytes):
        try:
            xml = xml.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TwimlError(f"not UTF-8: {exc}") from exc
    if _NOT_XML_CHAR.search(xml):  # NULs are how UTF-16 or UTF-32 would look here
        raise TwimlError("contains a character XML cannot carry")
    upper = xml.upper()
    if any(markup in upper for markup in _REFUSED_MARKUP):
        raise TwimlError("DOCTYPE and ENTITY declarations are refused")
    root = _parse(xml)
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    stream = root.find("Connect/Stream")
    url = None if stream is None else stream.get("url")
    if stream is None or not url:
        raise TwimlError("no <Connect><Stream url=...>")
    parameters: dict[str, str] = {}
    for parameter in stream.findall("Parameter"):
        name = parameter.get("name")
        if not name:
            raise TwimlError("<Parameter> without a name")
        parameters[name] = parameter.get("value", "")
    return url, parameters

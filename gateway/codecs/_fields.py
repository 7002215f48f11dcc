"""Reading typed fields out of untrusted JSON objects, shared by the JSON codecs.

Each reader names the field by its dotted path in the error ("start.mediaFormat.sampleRate:
expected an integer, got 'abc'"), so a rejected message says exactly what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from gateway.codecs.exceptions import MalformedMessage, MessageTooBig

# Twilio sends counters as decimal strings. 18 digits fit in 63 bits, so no huge int()
# conversion can be forced on us; `[0-9]` rather than `\d` because \d takes any Unicode digit.
_DECIMAL = re.compile(r"[0-9]{1,18}")


def short(value: object, limit: int = 40) -> str:
    """A repr cut to `limit` characters: error messages echo input, never all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def object_or_empty(body: bytes) -> dict[str, Any]:
    """A vendor's JSON answer as an object; anything else (empty, not JSON, not an object)
    as {}, so the status code and the fields that are there decide what happened."""
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def load_object(raw: str | bytes, max_bytes: int) -> dict[str, Any]:
    """Parses one JSON text message; refuses it over `max_bytes` (UTF-8) or not an object."""
    if len(raw) > max_bytes:  # cheap first: a str never has fewer bytes than characters
        raise MessageTooBig(f"message of {len(raw)}+ bytes exceeds {max_bytes}")
    if isinstance(raw, str):
        # surrogatepass: a lone surrogate is counted here and refused by orjson below.
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise MessageTooBig(f"message of {size} bytes exceeds {max_bytes}")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(message).__name__}")
    return message


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise MalformedMessage(f"{where}: missing")
    return obj[key]


def get_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise MalformedMessage(f"{where}: expected a string, got {short(value)}")
    return value


def get_object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _get(obj, key, where)
    if not isinstance(value, dict):
        raise MalformedMessage(f"{where}: expected an object, got {short(value)}")
    return value


def get_int(obj: dict[str, Any], key: str, where: str) -> int:
    """A non-negative integer sent as a decimal string (Twilio's way) or a JSON integer."""
    value = _get(obj, key, where)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    # bool is an int subclass: `true` is not a sequence number.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    raise MalformedMessage(f"{where}: expected a non-negative integer, got {short(value)}")


def get_optional_int(obj: dict[str, Any], key: str, where: str) -> int | None:
    return get_int(obj, key, where) if key in obj else None


def get_str_list(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _get(obj, key, where)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedMessage(f"{where}: expected a list of strings, got {short(value)}")
    return tuple(value)


def get_str_map(obj: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = get_object(obj, key, where)
    for name, item in value.items():
        if not isinstance(item, str):
            raise MalformedMessage(f"{where}.{name}: expected a string, got {short(item)}")
    return dict(value)


def decode_base64(text: str, where: str, max_bytes: int) -> bytes:
    """Strict standard base64 (padding required, no whitespace), capped before decoding."""
    if len(text) > 4 * -(-max_bytes // 3):
        raise MessageTooBig(f"{where}: {len(text)} base64 characters exceed {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise MalformedMessage(f"{where}: invalid base64 ({exc})") from exc
    if len(data) > max_bytes:
        raise MessageTooBig(f"{where}: {len(data)} bytes exceed {max_bytes}")
    return data


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

"""SMS segments: how many parts a text is sent in, and what each part holds.

The rules (3GPP TS 23.038 and TS 23.040, as carriers and Twilio bill them):

- A text whose every character is in the GSM 03.38 default alphabet or its extension
  table is sent as GSM-7: 160 septets in one message, 153 per part when it must be split
  (the user data header of a concatenated message takes 7 septets). An extension
  character (`^ { } \\ [ ~ ] | €` and form feed) is an escape plus a code: two septets.
- One character outside GSM-7 switches the whole text to UCS-2: 70 UTF-16 code units in
  one message, 67 per part. A character outside the Basic Multilingual Plane (most emoji)
  is a surrogate pair: two code units.
- Parts are cut between graphemes (Unicode extended grapheme clusters): an emoji with
  skin tone or ZWJ sequence, a flag, a letter with combining marks, CR LF, and an escape
  pair all stay whole in one part. Only a single grapheme too big for a part on its own
  (dozens of stacked combining marks) is cut, between code points, never inside a
  surrogate pair: there is no other way to send it.

An empty text is one (empty) message. Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import regex

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Encoding",
    "Segmentation",
    "count_segments",
    "encoding_for",
    "graphemes",
    "segment",
    "truncate_to_segments",
    "units",
]

Encoding = Literal["GSM-7", "UCS-2"]

# The default alphabet, in code order 0x00-0x7F; 0x1B (the escape to the extension table)
# is left out: a literal ESC in a text is not a character GSM-7 can carry.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}

_GRAPHEME = regex.compile(r"\X", regex.DOTALL)


@dataclass(frozen=True)
class Segmentation:
    encoding: Encoding
    parts: tuple[str, ...]
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text

    @property
    def count(self) -> int:
        return len(self.parts)


def encoding_for(text: str) -> Encoding:
    gsm = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(char in gsm for char in text) else "UCS-2"


def _char_units(char: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def units(text: str, encoding: Encoding | None = None) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of `text`."""
    chosen = encoding or encoding_for(text)
    return sum(_char_units(char, chosen) for char in text)


def graphemes(text: str) -> list[str]:
    return [match.group() for match in _GRAPHEME.finditer(text)]


def _pieces(text: str, encoding: Encoding, limit: int) -> list[tuple[str, int]]:
    """The text as (grapheme, units) pieces; a grapheme over `limit` is cut by code point."""
    pieces: list[tuple[str, int]] = []
    for cluster in graphemes(text):
        size = units(cluster, encoding)
        if size <= limit:
            pieces.append((cluster, size))
        else:
            pieces.extend((char, _char_units(char, encoding)) for char in cluster)
    return pieces


def segment(text: str) -> Segmentation:
    encoding = encoding_for(text)
    total = units(text, encoding)
    if total <= SINGLE[encoding]:
        return Segmentation(encoding, (text,), total)
    limit = PART[encoding]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for piece, size in _pieces(text, encoding, limit):
        if used + size > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(piece)
        used += size
    parts.append("".join(current))
    return Segmentation(encoding, tuple(parts), total)


def count_segments(text: str) -> int:
    return segment(text).count


def truncate_to_segments(text: str, max_segments: int) -> str:
    """The longest prefix of whole parts that is sent in at most `max_segments`."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    split = segment(text)
    return text if split.count <= max_segments else "".join(split.parts[:max_segments])

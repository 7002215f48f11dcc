"""SMS segment counting: vectors derived by hand from the rules, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs.sms_segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    PART,
    SINGLE,
    count_segments,
    encoding_for,
    graphemes,
    segment,
    truncate_to_segments,
    units,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl: 8 code units
THUMBS = "\U0001f44d\U0001f3fd"  # thumbs up, medium skin tone: 4 code units
FLAG = "\U0001f1e9\U0001f1ea"  # regional indicators D E: 4 code units
GRIN = "\U0001f600"  # a surrogate pair: 2 code units


@pytest.mark.parametrize(
    ("text", "encoding", "sizes"),
    [
        ("", "GSM-7", [0]),
        ("a" * 160, "GSM-7", [160]),
        ("a" * 161, "GSM-7", [153, 8]),
        ("a" * 306, "GSM-7", [153, 153]),
        ("a" * 307, "GSM-7", [153, 153, 1]),
        # Extension characters count two septets each.
        ("€" * 80, "GSM-7", [160]),
        ("€" * 81, "GSM-7", [152, 10]),
        ("a" * 158 + "€", "GSM-7", [160]),
        ("a" * 159 + "€", "GSM-7", [153, 8]),
        # An escape pair at the boundary moves whole into the next part.
        ("a" * 152 + "€" + "b" * 10, "GSM-7", [152, 12]),
        ("a" * 152 + "{}", "GSM-7", [156]),
        ("a" * 152 + "{}" + "c" * 6, "GSM-7", [152, 10]),
        # CR LF is one grapheme: never split.
        ("a" * 152 + "\r\n" + "b" * 10, "GSM-7", [152, 12]),
        # GSM-7 letters with accents stay GSM-7; one character outside switches.
        ("Ça coûte 5€", "UCS-2", [11]),
        ("Ça va? é à ñ ü ß Δ Ω", "GSM-7", [20]),
        ("я" * 70, "UCS-2", [70]),
        ("я" * 71, "UCS-2", [67, 4]),
        ("a" * 160 + "я", "UCS-2", [67, 67, 27]),
        # Surrogate pairs are two code units and never split.
        (GRIN * 35, "UCS-2", [70]),
        (GRIN * 36, "UCS-2", [66, 6]),
        ("a" * 66 + GRIN, "UCS-2", [68]),
        ("a" * 69 + GRIN, "UCS-2", [67, 4]),
        ("a" * 66 + GRIN + "aaa", "UCS-2", [66, 5]),
        # A flag (two regional indicators) stays whole at the boundary...
        ("a" * 65 + FLAG + "aa", "UCS-2", [65, 6]),
        ("a" * 63 + FLAG + "bbbb", "UCS-2", [67, 4]),
        # ...and so do an emoji with a skin tone and a ZWJ family.
        ("a" * 64 + THUMBS + "bbb", "UCS-2", [64, 7]),
        ("a" * 62 + FAMILY, "UCS-2", [70]),
        ("a" * 62 + FAMILY + "b", "UCS-2", [62, 9]),
        # A letter with a combining accent is one grapheme of two code units.
        ("a" * 66 + "e\u0301" + "bbb", "UCS-2", [66, 5]),
    ],
)
def test_vectors(text: str, encoding: str, sizes: list[int]) -> None:
    split = segment(text)
    assert split.encoding == encoding
    assert [units(part, split.encoding) for part in split.parts] == sizes
    assert "".join(split.parts) == text
    assert count_segments(text) == len(sizes)


def test_a_single_grapheme_too_big_for_a_part_is_cut_between_code_points() -> None:
    zalgo = "a" + "\u0301" * 80  # one grapheme of 81 code units
    assert len(graphemes(zalgo)) == 1
    split = segment(zalgo)
    assert [units(part, "UCS-2") for part in split.parts] == [67, 14]
    assert "".join(split.parts) == zalgo


def test_escape_is_not_gsm7_and_alphabets_are_complete() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes less the escape
    assert len(GSM7_EXTENSION) == 10
    assert encoding_for("\x1b") == "UCS-2"
    assert encoding_for("`") == "UCS-2"  # the backtick is not in GSM-7


def test_truncate_keeps_whole_parts() -> None:
    text = "word " * 100  # 500 septets: 4 parts
    assert count_segments(text) == 4
    cut = truncate_to_segments(text, 2)
    assert text.startswith(cut) and count_segments(cut) == 2 and len(cut) == 306
    assert truncate_to_segments("short", 1) == "short"
    assert truncate_to_segments(GRIN * 36, 1) == GRIN * 33
    with pytest.raises(ValueError):
        truncate_to_segments("x", 0)


_PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        " ",
        "\n",
        "\r\n",
        "é",
        "Δ",
        "€",
        "{",
        "~",
        "|",
        "я",
        "ç",
        "中",
        GRIN,
        FLAG,
        THUMBS,
        FAMILY,
        "e\u0301",
        "\u200d",
    ]
)
_TEXTS = st.lists(_PIECES, max_size=400).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_parts_rebuild_the_text_and_respect_the_limits(text: str) -> None:
    split = segment(text)
    assert "".join(split.parts) == text
    assert split.units == units(text)
    assert split.encoding == encoding_for(text)
    if split.units <= SINGLE[split.encoding]:
        assert split.count == 1
    else:
        assert split.count > 1
        assert all(units(part, split.encoding) <= PART[split.encoding] for part in split.parts)
        assert all(part for part in split.parts)


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_a_grapheme_is_never_split(text: str) -> None:
    whole = graphemes(text)
    if any(units(g, encoding_for(text)) > PART[encoding_for(text)] for g in whole):
        return  # only an oversized grapheme may be cut (tested above)
    rebuilt = [g for part in segment(text).parts for g in graphemes(part)]
    assert rebuilt == whole


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(GSM7_BASIC - {"\r"}), max_size=1000))
def test_basic_gsm7_counts_match_the_formula(text: str) -> None:
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert count_segments(text) == expected


@settings(max_examples=200, deadline=None)
@given(_TEXTS, st.integers(min_value=1, max_value=5))
def test_truncation_is_a_prefix_within_the_limit(text: str, limit: int) -> None:
    cut = truncate_to_segments(text, limit)
    assert text.startswith(cut)
    assert count_segments(cut) <= limit

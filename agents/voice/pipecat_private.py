"""Every use of pipecat's private API in the call path, in one place.

pipecat is pinned exactly (pyproject.toml) because it breaks APIs between minors; what is
here leans on attributes it does not promise to keep. `PINNED` is the version this was
written against, and tests/agents/test_pipecat_private.py fails when the installed
pipecat is another one or when an attribute used here is gone: read this module again
before moving the pin.

- `FirstClauseAggregator` subclasses `SimpleTextAggregator` and writes its `_text`
  buffer; `use_first_clause_aggregator` replaces a TTS service's `_text_aggregator`.
  Why: pipecat sends a reply's first TTS request at the end of its first *sentence*, and
  only once the token after the full stop arrived (its lookahead). The first clause
  (a comma, semicolon, colon, or a stop after an ordinary word) is enough to start
  speaking, and every ms before the first TTS request is latency the caller hears.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pipecat
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

PINNED = "1.14.0"
PRIVATE_ATTRIBUTES = {SimpleTextAggregator: ("_text",), TTSService: ("_text_aggregator",)}

CLAUSE_ENDS = ",;:!?"  # end a first clause at once
MIN_CLAUSE_WORDS = 3  # "Yes, ..." alone is too short to be worth a request of its own
# A stop after one of these (or after a number: "$29.9") is not the end of a clause.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "no", "mt",
                           "ft", "prof", "inc", "ltd", "co", "e.g", "i.e", "a.m", "p.m"})
_LAST_WORD = re.compile(r"([A-Za-z.]+)\.$")


def installed_version() -> str:
    return str(pipecat.__version__)


def _ends_clause(text: str, char: str) -> bool:
    if len(text.split()) < MIN_CLAUSE_WORDS:
        return False
    if char in CLAUSE_ENDS:
        return True
    if char != ".":
        return False
    word = _LAST_WORD.search(text.rstrip(" ").rstrip("\n"))
    return word is not None and len(word.group(1)) >= 2 and \
        word.group(1).lower() not in ABBREVIATIONS and "." not in word.group(1)


class FirstClauseAggregator(SimpleTextAggregator):
    """Sentence aggregation, except that a reply's first clause is released the moment
    its punctuation arrives."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if not self._first or self.aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for index, char in enumerate(text):
            self._text += char
            if _ends_clause(self._text, char):
                clause = self._text.strip(" ")
                await super().reset()  # type: ignore[no-untyped-call]
                self._first = False
                yield Aggregation(text=clause, type=TextType.SENTENCE)
                async for aggregation in super().aggregate(text[index + 1:]):
                    yield aggregation
                return

    async def flush(self) -> Aggregation | None:
        self._first = True  # the reply ended: the next one starts with a clause again
        result: Aggregation | None = await super().flush()
        return result

    async def handle_interruption(self) -> None:
        self._first = True
        await super().handle_interruption()  # type: ignore[no-untyped-call]

    async def reset(self) -> None:
        self._first = True
        await super().reset()  # type: ignore[no-untyped-call]


def use_first_clause_aggregator(tts: TTSService) -> None:
    current = tts._text_aggregator
    tts._text_aggregator = FirstClauseAggregator(aggregation_type=current.aggregation_type,
                                                 language=current.language)

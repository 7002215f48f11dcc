"""agents/voice/pipecat_private.py: the pipecat it was written against, the private
attributes it uses, and the first-clause aggregation it installs."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import aiohttp
import openai
import pytest
from pipecat.utils.text.base_text_aggregator import TextType

from agents.voice import pipecat_private
from agents.voice.metering import CallUsage
from agents.voice.pipecat_private import PINNED, PRIVATE_ATTRIBUTES, FirstClauseAggregator
from agents.voice.services import VoiceProviders, make_services

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_and_the_pinned_pipecat_are_the_one_this_module_was_written_for() -> None:
    """Moving the pin fails here: read agents/voice/pipecat_private.py again first."""
    assert pipecat_private.installed_version() == PINNED
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    assert any(d.startswith("pipecat-ai[") and d.endswith(f"=={PINNED}")
               for d in dependencies), dependencies


@pytest.mark.parametrize(("cls", "names"), list(PRIVATE_ATTRIBUTES.items()))
def test_the_private_attributes_used_exist(cls: type, names: tuple[str, ...]) -> None:
    source = Path(inspect.getfile(cls)).read_text()
    for name in names:
        assert f"self.{name} =" in source or f"self.{name}:" in source, (cls, name)


async def _aggregate(tokens: list[str]) -> list[tuple[str, str]]:
    aggregator = FirstClauseAggregator(aggregation_type=TextType.SENTENCE)
    out = []
    for token in tokens:
        async for aggregation in aggregator.aggregate(token):
            out.append((token, aggregation.text))
    flushed = await aggregator.flush()
    if flushed is not None:
        out.append(("<end>", flushed.text))
    return out


async def test_the_first_clause_goes_out_with_its_punctuation_not_a_token_later() -> None:
    tokens = ["This", " is", " the", " voicegw", " emulator.", " You", " said:", " What",
              " time.", " It", " costs", " $29.9", "9.", " Done"]
    assert await _aggregate(tokens) == [
        (" emulator.", "This is the voicegw emulator."),  # pipecat's own: at " You"
        (" It", "You said: What time."),  # then sentences, as pipecat aggregates them
        (" Done", "It costs $29.99."),
        ("<end>", "Done"),
    ]
    assert await _aggregate(["Sure,", " I", " can", " help,", " of", " course."]) == [
        (" help,", "Sure, I can help,"), ("<end>", "of course.")]


async def test_no_first_clause_at_an_abbreviation_a_number_or_too_few_words() -> None:
    assert (await _aggregate(["Hi", " Dr.", " Smith", " is", " in,", " yes."]))[0] == (
        " in,", "Hi Dr. Smith is in,")
    assert (await _aggregate(["It", " is", " 29.", "5", " degrees,", " ok"]))[0] == (
        " degrees,", "It is 29.5 degrees,")


async def test_every_reply_starts_with_a_clause_again() -> None:
    aggregator = FirstClauseAggregator(aggregation_type=TextType.SENTENCE)
    for reply in (["One", " two", " three,", " four."], ["Five", " six", " seven,"]):
        first = []
        for token in reply:
            first += [a.text async for a in aggregator.aggregate(token)]
        assert first and first[0].endswith(",")
        await aggregator.flush()


async def test_the_call_tts_uses_the_first_clause_aggregator() -> None:
    providers = VoiceProviders("k", "http://127.0.0.1:9/v1", "k", "http://127.0.0.1:9")
    openai_http = openai.DefaultAsyncHttpxClient()
    async with aiohttp.ClientSession() as http:
        _, _, tts = make_services(providers, CallUsage(), http, openai_http, voice="v",
                                  language="en", system_prompt="s")
    await openai_http.aclose()
    assert isinstance(tts._text_aggregator, FirstClauseAggregator)

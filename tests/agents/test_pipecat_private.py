"""agents/voice/pipecat_private.py: the pipecat it was written against, the private
attributes it uses, and the first-clause aggregation it installs."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import aiohttp
import openai
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.utils.text.base_text_aggregator import TextType

from agents.voice import pipecat_private
from agents.voice.metering import CallUsage
from agents.voice.pipecat_private import (
    PINNED,
    PRIVATE_ATTRIBUTES,
    FirstClauseAggregator,
    SharedSileroVADAnalyzer,
)
from agents.voice.services import VoiceProviders, make_services
from agents.voice.vad import make_vad
from load import speech

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
        assert hasattr(cls, name) or f"self.{name} =" in source \
            or f"self.{name}:" in source, (cls, name)


async def _states(analyzer: VADAnalyzer, pcm: bytes) -> list[VADState]:
    return [await analyzer.analyze_audio(pcm[i:i + 640]) for i in range(0, len(pcm), 640)]


async def test_skipping_silent_windows_changes_no_decision_of_the_vad() -> None:
    """The gateway's Silero (shared session, model skipped on silence) and pipecat's own
    decide alike, 40 ms at a time, over utterances with silence between them."""
    silence = bytes(8000 * 2 * 4)  # 4 s: the caller listening to the agent
    pcm = silence
    for index, text in enumerate(["What are your opening hours", "Thanks, that is all"]):
        coded = speech.render_utterance(speech.phrase_code(text),
                                        speech.utterance_seconds(text), voice=index)
        pcm += speech.ulaw_decode(speech.ulaw_encode(coded)) + silence
    ours = make_vad("silero", 8000)
    theirs = SileroVADAnalyzer(sample_rate=8000, params=VADParams())
    assert isinstance(ours, SharedSileroVADAnalyzer)
    ours.set_sample_rate(8000)  # as the pipeline does at its start
    theirs.set_sample_rate(8000)
    mine, stock = await _states(ours, pcm), await _states(theirs, pcm)
    assert mine == stock
    assert mine.count(VADState.SPEAKING) > 0
    assert ours.skipped_windows > len(pcm) // 2 // 256 // 2  # most of the silences skipped


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

"""The vendor services of a call (OpenAI STT and LLM, ElevenLabs TTS), metered where
their input leaves for the vendor.

Counting at the point of sending is what makes cut-off usage billable: the characters a
TTS request carried were paid for even if the caller barged in before hearing them, and
the audio a transcription request carried was paid for whatever came back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
from pipecat.frames.frames import Frame, LLMFullResponseStartFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.transcriptions.language import Language

from agents.voice.metering import CallUsage, LLMUsageMeter
from agents.voice.pipecat_private import use_first_clause_aggregator
from agents.voice.timing import TurnTimer


@dataclass(frozen=True)
class VoiceProviders:
    """Where the vendors are and how to reach them: real ones, or the emulators."""

    openai_api_key: str
    openai_base_url: str
    elevenlabs_api_key: str
    elevenlabs_base_url: str
    llm_model: str = "gpt-4.1-mini"
    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "eleven_flash_v2_5"


def openai_http_client() -> openai.DefaultAsyncHttpxClient:
    """One connection pool for every call's OpenAI requests in this process (closed by
    the gateway on shutdown), instead of a client per call that nobody closes."""
    return openai.DefaultAsyncHttpxClient(timeout=30.0)


class MeteredLLM(OpenAILLMService):
    """OpenAI LLM on the process's shared HTTP connection pool, telling its meter every
    frame it pushes."""

    def __init__(self, http_client: openai.DefaultAsyncHttpxClient, **kwargs: Any) -> None:
        self._shared_http = http_client  # read by create_client, which __init__ calls
        self.meter: LLMUsageMeter | None = None
        self.timer: TurnTimer | None = None
        super().__init__(**kwargs)

    async def push_frame(self, frame: Frame,
                         direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if direction == FrameDirection.DOWNSTREAM:
            if self.meter is not None:
                self.meter.on_llm_frame(frame)
            if self.timer is not None and isinstance(frame, LLMFullResponseStartFrame):
                self.timer.stamp("llm_request")  # pushed just before the request leaves
        await super().push_frame(frame, direction)

    async def get_chat_completions(self, context: Any) -> Any:
        stream = await super().get_chat_completions(context)
        return MeteredStream(stream, self.meter)

    def create_client(self, api_key: Any = None, base_url: Any = None,
                      organization: Any = None, project: Any = None,
                      default_headers: Any = None, **kwargs: Any) -> Any:
        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url,
                                  organization=organization, project=project,
                                  default_headers=default_headers,
                                  http_client=self._shared_http)


class MeteredStream:
    """The LLM's chunk stream, shown to the meter chunk by chunk (tool-call arguments
    that stream before an interruption are billed like interrupted text)."""

    def __init__(self, stream: Any, meter: LLMUsageMeter | None) -> None:
        self._stream = stream
        self._meter = meter

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        inner = self._stream.__aiter__()
        try:
            async for chunk in inner:
                if self._meter is not None:
                    self._meter.on_chunk(chunk)
                yield chunk
        finally:
            if hasattr(inner, "aclose"):
                await inner.aclose()

    async def close(self) -> None:
        await self._stream.close()


class MeteredSTT(OpenAISTTService):
    """OpenAI speech-to-text that counts the audio it sends (`stt_seconds`, in ms)."""

    def __init__(self, usage: CallUsage, timer: TurnTimer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._usage = usage
        self._timer = timer or TurnTimer()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        # 16-bit mono PCM at the pipeline's input rate.
        self._usage.stt_ms += len(audio) * 1000 // (2 * self.sample_rate)
        self._timer.stamp("stt_request")
        async for frame in super().run_stt(audio):
            self._timer.stamp("stt_answer")
            yield frame


class MeteredTTS(ElevenLabsHttpTTSService):
    """ElevenLabs streaming TTS that counts the characters it sends (`tts_characters`)."""

    def __init__(self, usage: CallUsage, timer: TurnTimer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._usage = usage
        self._timer = timer or TurnTimer()

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self._usage.tts_characters += len(text)
        self._timer.stamp("tts_request")
        async for frame in super().run_tts(text, context_id):
            if isinstance(frame, TTSAudioRawFrame):
                self._timer.stamp("tts_first_byte")
            yield frame


def _language(code: str) -> Language:
    try:
        return Language(code)
    except ValueError:
        return Language.EN


def make_services(providers: VoiceProviders, usage: CallUsage, http: aiohttp.ClientSession,
                  openai_http: openai.DefaultAsyncHttpxClient, *, voice: str, language: str,
                  system_prompt: str, timer: TurnTimer | None = None,
                  ) -> tuple[MeteredSTT, MeteredLLM, MeteredTTS]:
    lang = _language(language)
    timer = timer or TurnTimer()
    stt = MeteredSTT(usage, timer, api_key=providers.openai_api_key,
                     base_url=providers.openai_base_url, http_client=openai_http,
                     settings=OpenAISTTService.Settings(model=providers.stt_model,
                                                        language=lang))
    llm = MeteredLLM(openai_http, api_key=providers.openai_api_key,
                          base_url=providers.openai_base_url,
                          settings=OpenAILLMService.Settings(
                              model=providers.llm_model, system_instruction=system_prompt))
    llm.timer = timer
    tts = MeteredTTS(usage, timer, api_key=providers.elevenlabs_api_key, aiohttp_session=http,
                     base_url=providers.elevenlabs_base_url, sample_rate=8000,
                     settings=MeteredTTS.Settings(voice=voice, model=providers.tts_model,
                                                  language=lang))
    use_first_clause_aggregator(tts)  # the first TTS request at the first clause
    return stt, llm, tts

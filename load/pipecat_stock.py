"""A stock pipecat 1.14 Twilio voice bot, to measure beside voicegw in `make bench-calls`.

Not part of the gateway: a measuring tool, written the way pipecat's own Twilio examples
are (FastAPI + uvicorn, `FastAPIWebsocketTransport` with `TwilioFrameSerializer`,
Silero VAD with the gateway's stop_secs and speech timeout, pipecat's OpenAI STT, LLM and
TTS services pointed at the same emulators), with no metering, no credit, no database:
everything it costs is pipecat's own. `python -m load.pipecat_stock --port P --vendors
URL` serves `POST /twilio/voice` (TwiML connecting a stream to `/ws`, as Twilio asks)
and the media stream `GET /ws`; the benchmark's simulated callers place calls against it
exactly as against the gateway. Its only state is the number of live calls
(`GET /metrics`: `voicegw_active_calls N`, the line the benchmark reads).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

GREETING = "Hello, thank you for calling. How can I help you today?"
SYSTEM = "You are a friendly receptionist on the phone. Answer briefly."


def build_app(vendors: str, stop_s: float, speech_timeout_s: float) -> FastAPI:
    app = FastAPI()
    live = {"calls": 0}

    @app.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        host = request.headers.get("host", "127.0.0.1")
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                f'<Stream url="wss://{host}/ws"></Stream></Connect></Response>')
        return Response(content=body, media_type="text/xml")

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(f"voicegw_active_calls {live['calls']}\n")

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.websocket("/ws")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        live["calls"] += 1
        try:
            await _run_bot(websocket, vendors, stop_s, speech_timeout_s)
        finally:
            live["calls"] -= 1

    return app


async def _run_bot(websocket: WebSocket, vendors: str, stop_s: float,
                   speech_timeout_s: float) -> None:
    _, call_data = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(stream_sid=call_data["stream_id"],
                                       call_sid=call_data["call_id"],
                                       params=TwilioFrameSerializer.InputParams(
                                           auto_hang_up=False))
    transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
        serializer=serializer, allowed_origins=[]))
    key, base = "emulator-openai-key", vendors + "/v1"
    stt = OpenAISTTService(api_key=key, base_url=base, settings=OpenAISTTService.Settings(
        model="gpt-4o-mini-transcribe"))
    llm = OpenAILLMService(api_key=key, base_url=base, settings=OpenAILLMService.Settings(
        model="gpt-4.1-mini", system_instruction=SYSTEM))
    tts = OpenAITTSService(api_key=key, base_url=base, settings=OpenAITTSService.Settings(
        model="gpt-4o-mini-tts", voice="alloy"))
    aggregators = LLMContextAggregatorPair(LLMContext(), user_params=LLMUserAggregatorParams(
        vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=stop_s)),
        user_turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy()],
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=speech_timeout_s)])))
    pipeline = Pipeline([transport.input(), stt, aggregators.user(), llm, tts,
                         transport.output(), aggregators.assistant()])
    task = PipelineTask(pipeline, params=PipelineParams(
        audio_in_sample_rate=8000, audio_out_sample_rate=8000, enable_metrics=False),
        idle_timeout_secs=None)

    async def greet(_transport: object, _client: object) -> None:
        await task.queue_frames([TTSSpeakFrame(GREETING)])

    async def hung_up(_transport: object, _client: object) -> None:
        await task.cancel()

    transport.add_event_handler("on_client_connected", greet)
    transport.add_event_handler("on_client_disconnected", hung_up)

    await PipelineRunner(handle_sigint=False).run(task)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.pipecat_stock",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--vendors", required=True, help="the emulators' base URL")
    parser.add_argument("--vad-stop-s", type=float, default=0.2)
    parser.add_argument("--user-speech-timeout-s", type=float, default=0.4)
    args = parser.parse_args()
    logger.remove()  # pipecat logs several DEBUG lines per frame by default
    logger.add(lambda message: print(message, end="", flush=True), level="WARNING")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    uvicorn.run(build_app(args.vendors, args.vad_stop_s, args.user_speech_timeout_s),
                host="127.0.0.1", port=args.port, log_level="warning", ws="websockets")


if __name__ == "__main__":
    main()

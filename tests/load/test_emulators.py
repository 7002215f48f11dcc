"""The emulators speak the vendors' wire protocols: the real clients run against them."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators

SID, TOKEN = "AC" + "1" * 32, "twilio-secret"
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("book_appointment", "create_support_ticket", "transfer_to_human")]


@pytest.fixture
async def emulators() -> AsyncIterator[RunningEmulators]:
    config = EmulatorConfig(ChatState(ChatTiming(0, 0)),
                            VendorState(twilio_accounts={SID: TOKEN}, graph_token="g-token"))
    running = await start_emulators(config=config)
    yield running
    await running.stop()


def _client(emulators: RunningEmulators) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="k", base_url=emulators.base_urls()["openai"],
                              max_retries=0)


async def test_streamed_text_with_usage(emulators: RunningEmulators) -> None:
    stream = await _client(emulators).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}],
        stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert "voicegw emulator" in text
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


async def test_streamed_tool_call(emulators: RunningEmulators) -> None:
    stream = await _client(emulators).chat.completions.create(
        model="m", tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": "I want to book an appointment tomorrow at 3pm"}])
    name, arguments, finish = "", "", None
    async for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        finish = choice.finish_reason or finish
    assert (name, finish) == ("book_appointment", "tool_calls")
    assert '"when":"tomorrow at 3pm"' in arguments


async def test_chat_needs_a_key_and_can_fail_on_demand(emulators: RunningEmulators) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{emulators.base}/v1/chat/completions", json={})
        assert response.status == 401
    emulators.config.chat.fail_next.append(500)
    with pytest.raises(openai.InternalServerError):
        await _client(emulators).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])


async def test_twilio_rest_and_whatsapp_window(emulators: RunningEmulators) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)}
    async with aiohttp.ClientSession(base_url=emulators.base) as http:
        hang_up = await http.post(f"/2010-04-01/Accounts/{SID}/Calls/CA1.json",
                                  data={"Status": "completed"}, headers=auth)
        assert (await hang_up.json())["status"] == "completed"
        wrong = await http.post(f"/2010-04-01/Accounts/{SID}/Calls/CA1.json",
                                data={},
                                headers={"Authorization": aiohttp.encode_basic_auth(SID, "no")})
        assert wrong.status == 401
        sms = await http.post(f"/2010-04-01/Accounts/{SID}/Messages.json",
                              data={"To": "+15550001", "From": "+15550002", "Body": "é" * 71},
                              headers=auth)
        assert (await sms.json())["num_segments"] == "2"
        headers = {"Authorization": "Bearer g-token"}
        body = {"messaging_product": "whatsapp", "to": "4915", "type": "text",
                "text": {"body": "hi"}}
        closed = await http.post("/v21.0/PN1/messages", json=body, headers=headers)
        assert (await closed.json())["error"]["code"] == 131047
        await http.post("/_emulator/inbound", json={"phone_number_id": "PN1", "from": "4915"})
        sent = await http.post("/v21.0/PN1/messages", json=body, headers=headers)
        assert (await sent.json())["messages"][0]["id"].startswith("wamid.")
    assert emulators.config.vendors.twilio_calls[0]["Status"] == "completed"


async def test_elevenlabs_streams_audio_in_proportion(emulators: RunningEmulators) -> None:
    async with aiohttp.ClientSession(base_url=emulators.base) as http:
        denied = await http.post("/v1/text-to-speech/v/stream", json={"text": "x"})
        assert denied.status == 401
        audio = await (await http.post("/v1/text-to-speech/v/stream?output_format=ulaw_8000",
                                       json={"text": "hello"},
                                       headers={"xi-api-key": "k"})).read()
    assert len(audio) == 5 * 480
    assert emulators.config.vendors.tts_characters == 5
    assert base64.b64encode(audio[:4])

"""Typed application state of the phone channel."""

from __future__ import annotations

import aiohttp
import openai
from aiohttp import web

from agents.voice.services import VoiceProviders
from gateway.voice.capacity import CallCapacity
from gateway.voice.twilio_rest import TwilioCalls

VENDOR_HTTP = web.AppKey("vendor_http", aiohttp.ClientSession)
VOICE_PROVIDERS = web.AppKey("voice_providers", VoiceProviders)
TWILIO_CALLS = web.AppKey("twilio_calls", TwilioCalls)
STREAM_TOKEN_KEY = web.AppKey("stream_token_key", bytes)
OPENAI_HTTP = web.AppKey("openai_http", openai.DefaultAsyncHttpxClient)
CALL_CAPACITY = web.AppKey("call_capacity", CallCapacity)

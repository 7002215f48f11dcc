"""Meter names: part of the API (usage reports group by them), so spelled once, here."""

from __future__ import annotations

from enum import StrEnum


class Meter(StrEnum):
    CHAT_INPUT_TOKENS = "chat_input_tokens"
    CHAT_OUTPUT_TOKENS = "chat_output_tokens"
    TOOL_CALLS = "tool_calls"
    CALL_SECONDS = "call_seconds"
    VOICE_INPUT_TOKENS = "voice_input_tokens"
    VOICE_OUTPUT_TOKENS = "voice_output_tokens"
    TTS_CHARACTERS = "tts_characters"
    STT_SECONDS = "stt_seconds"
    SMS_SENT_SEGMENTS = "sms_sent_segments"
    SMS_RECEIVED_SEGMENTS = "sms_received_segments"
    WHATSAPP_MESSAGES = "whatsapp_messages"
    NUMBER_LOCAL_MONTHS = "number_local_months"
    NUMBER_MOBILE_MONTHS = "number_mobile_months"
    SUMMARY_TOKENS = "summary_tokens"  # a conversation's generated summary, in and out


# The raw unit each meter counts. Time meters count milliseconds so that no fraction of a
# second is lost before the billing increment decides how to round it.
RAW_UNIT: dict[Meter, str] = {
    Meter.CHAT_INPUT_TOKENS: "tokens",
    Meter.CHAT_OUTPUT_TOKENS: "tokens",
    Meter.TOOL_CALLS: "calls",
    Meter.CALL_SECONDS: "ms",
    Meter.VOICE_INPUT_TOKENS: "tokens",
    Meter.VOICE_OUTPUT_TOKENS: "tokens",
    Meter.TTS_CHARACTERS: "characters",
    Meter.STT_SECONDS: "ms",
    Meter.SMS_SENT_SEGMENTS: "segments",
    Meter.SMS_RECEIVED_SEGMENTS: "segments",
    Meter.WHATSAPP_MESSAGES: "messages",
    Meter.NUMBER_LOCAL_MONTHS: "number-months",
    Meter.NUMBER_MOBILE_MONTHS: "number-months",
    Meter.SUMMARY_TOKENS: "tokens",
}

# Meters a card written before they existed may leave out: they are free there (a card
# that names them prices them as it says).
FREE_WHEN_ABSENT = frozenset({Meter.SUMMARY_TOKENS.value})

METER_NAMES = frozenset(m.value for m in Meter)

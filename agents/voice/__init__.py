"""The phone agent: one pipecat pipeline per call (transport -> STT -> user turn ->
LLM with tools -> TTS -> transport), its transport over the gateway's media stream, the
metering observer that feeds the call's credit session, and the call's lifecycle.

The transport speaks no vendor protocol: the gateway decodes Twilio's messages with its
codecs and feeds audio in; the transport hands audio, marks and clears back through the
`CallChannel` the gateway gives it. So `agents` never imports `gateway`.
"""

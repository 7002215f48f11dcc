"""Sans-I/O codecs for each vendor protocol the gateway speaks.

Every module here parses and builds one protocol's messages (Twilio Media Streams, Twilio
webhook signatures, TwiML, our own session tokens, ...) as pure functions and small stateful
classes that are fed text or bytes and hand back events or text to send. No sockets, no
asyncio, no clocks (callers pass `now_s`): the aiohttp handlers only move bytes, and tests
and fuzzers drive the codecs directly with literal vectors.

May import: the standard library, `orjson`, `regex` (grapheme clusters for SMS segments)
and each other. Nothing else, so a codec can be
lifted into the load generator or a test without dragging the server along. Every error
raised on bad input is a `CodecError` (see `exceptions.py` for the tree).
"""

"""Phone calls (Twilio Voice): the signed voice webhook that answers with TwiML, the
media-stream websocket that runs one agent per call with live metering, call status
callbacks, the replay claims that give a call one conversation ever, and Twilio's REST
call control (hang-up, transfer). The design and its trade-offs are in docs/voice.md.

`add_voice_routes(app)` mounts the routes and opens the vendor clients the calls share.
May import what `gateway` may (`agents`, `metering`, `api`); the vendor wire formats live
in `gateway.codecs`.
"""

from gateway.voice.routes import add_voice_routes

__all__ = ["add_voice_routes"]

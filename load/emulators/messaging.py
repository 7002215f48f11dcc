"""Control routes of the messaging emulators, for load tools in another process.

The Graph API (`POST /{version}/{phone_number_id}/messages`, refusing with 131047 outside
the 24-hour window) and Twilio Messages (`POST .../Messages.json`) live in
`rest_vendors`; these routes let a sender open windows in bulk (Meta knows when a
customer wrote; the emulator has to be told) and count what was sent.

- `POST /_emulator/messaging/windows` `{"phone_number_id": ..., "customers": [...]}`
- `GET /_emulator/messaging/stats` -> `{"graph_messages": n, "twilio_messages": n}`
- `GET /_emulator/messaging/sent?to=<customer>` -> `{"messages": [{"channel", "id", "text"}]}`
"""

from __future__ import annotations

import orjson
from aiohttp import web

from load.emulators.rest_vendors import VENDORS


async def open_windows(request: web.Request) -> web.Response:
    state = request.app[VENDORS]
    try:
        body = orjson.loads(await request.read())
        phone_id = str(body["phone_number_id"])
        customers = [str(c) for c in body["customers"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return web.json_response({"error": "phone_number_id and customers are required"},
                                 status=400)
    now = state.clock()
    for customer in customers:
        state.windows[(phone_id, customer)] = now
    return web.json_response({"opened": len(customers)})


async def stats(request: web.Request) -> web.Response:
    state = request.app[VENDORS]
    return web.json_response({"graph_messages": len(state.graph_messages),
                              "twilio_messages": len(state.twilio_messages)})


def add_routes(app: web.Application) -> None:
    """After `rest_vendors.add_routes`, whose state these routes read."""
    app.router.add_post("/_emulator/messaging/windows", open_windows)
    app.router.add_get("/_emulator/messaging/stats", stats)
    app.router.add_get("/_emulator/messaging/sent", sent_to)


async def sent_to(request: web.Request) -> web.Response:
    """`GET /_emulator/messaging/sent?to=<customer>`: what both vendors sent to them."""
    state = request.app[VENDORS]
    to = request.query.get("to", "")
    sent = [{"channel": "whatsapp", "id": m["id"], "text": m["text"]}
            for m in state.graph_messages if m["to"] == to]
    sent += [{"channel": "sms", "id": m["sid"], "text": m["body"]}
             for m in state.twilio_messages if m["to"] == to]
    return web.json_response({"messages": sent})

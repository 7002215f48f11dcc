"""The OpenAPI 3.1 description of the business and admin API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from metering.bounds import MAX_TOPUP_CREDITS

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    code: {"description": text, "content": {"application/problem+json": {"schema": _PROBLEM}}}
    for code, text in {
        "400": "malformed request (`malformed_json`, `idempotency_key_required`)",
        "401": "missing or wrong key (`unauthorized`)",
        "404": "no such resource, or another tenant's (`not_found`)",
        "409": "conflict (`idempotency_key_reused`, `number_taken`)",
        "413": "body too large (`payload_too_large`)",
        "422": "a field is invalid (`invalid_field`, the field is named in `field`)",
    }.items()
}
_BALANCE = {
    "type": "object",
    "properties": {
        "available_credits": {"type": "string", "examples": ["9950.250000"]},
        "reserved_credits": {"type": "string"},
        "paused": {"type": "boolean"},
        "available_micro_credits": {"type": "integer"},
        "reserved_micro_credits": {"type": "integer"},
    },
}


def _op(summary: str, ok: str, security: str, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{security: []}],
        "responses": {ok: {"description": "success"}, **_ERRORS},
    }
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string"}}


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "voicegw API", "version": "1"},
    "paths": {
        "/admin/tenants": {"post": _op(
            "Create a tenant; the API key is shown once", "201", "admin",
            {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string"}, "rate_card": {"type": "object"}}})},
        "/admin/tenants/{tenant_id}": {"get": _op("A tenant, its numbers and balance", "200",
                                                  "admin")},
        "/admin/tenants/{tenant_id}/numbers": {"post": _op(
            "Assign a phone number (billed monthly per the rate card)", "201", "admin",
            {"type": "object", "required": ["phone_number", "kind"],
             "properties": {"phone_number": {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"},
                            "kind": {"enum": ["local", "mobile"]},
                            "whatsapp_phone_number_id": {"type": "string"},
                            "operator_number": {"type": "string"}}})},
        "/v1/topups": {"post": {**_op(
            "Add credits, exactly once per Idempotency-Key", "201", "tenant",
            {"type": "object", "required": ["credits"],
             "properties": {"credits": {"type": "integer", "minimum": 1,
                                        "maximum": MAX_TOPUP_CREDITS},
                            "reference": {"type": "string", "maxLength": 200}}},
            [{"name": "Idempotency-Key", "in": "header", "required": True,
              "schema": {"type": "string", "maxLength": 255}}]),
            "description": "The same key again answers 200 with the first answer's body; the "
                           "same key with another body answers 409. A top-up that would take "
                           "the balance past 10^9 credits answers 409 balance_limit (nothing "
                           "recorded); 503 topup_pending means recorded but not yet "
                           "credited: retry with the same key."}},
        "/v1/topups/{topup_id}": {"get": _op("One of your top-ups", "200", "tenant")},
        "/v1/balance": {"get": {**_op("Live balance", "200", "tenant"),
                                "x-schema": _BALANCE}},
        "/v1/usage": {"get": _op("Usage from the ledger", "200", "tenant", params=[
            _query("from", "ISO date or date-time, inclusive (default: 30 days ago)"),
            _query("to", "ISO date or date-time, exclusive (default: now)"),
            _query("group_by", "meter | day | channel (default meter)")])},
        "/v1/calls": {"get": _op("Your latest call records, newest first", "200", "tenant")},
        "/v1/calls/{call_sid}": {"get": _op(
            "One call record: disposition, timings, usage, charges, outcomes, tool failures", "200",
            "tenant")},
        "/admin/tenants/{tenant_id}/agent": {
            "get": _op("The tenant's agent configuration", "200", "admin"),
            "put": _op("Change fields of the agent configuration", "200", "admin", {
                "type": "object", "properties": {
                    "system_prompt": {"type": "string", "maxLength": 8000},
                    "greeting": {"type": "string", "maxLength": 500},
                    "goodbye": {"type": "string", "maxLength": 500},
                    "voice": {"type": "string"}, "language": {"type": "string"},
                    "tools": {"type": "array", "items": {"enum": [
                        "book_appointment", "create_support_ticket", "place_order",
                        "transfer_to_human", "end_call"]}},
                    "turn_detection": {"enum": ["silero", "energy"]},
                    "paused_notice": {"type": ["string", "null"]}}})},
        "/twilio/voice": {"post": _op("Twilio voice webhook (X-Twilio-Signature); TwiML",
                                      "200", "twilio")},
        "/twilio/status": {"post": _op("Twilio call status callback", "204", "twilio")},
        "/v1/messages": {"post": {**_op(
            "Send a free-form WhatsApp (inside the 24-hour window) or SMS message", "201",
            "tenant", {"type": "object", "required": ["channel", "to", "text"],
                       "properties": {"channel": {"enum": ["whatsapp", "sms"]},
                                      "to": {"type": "string", "maxLength": 32},
                                      "text": {"type": "string", "maxLength": 4096}}}),
            "description": "Billed like any other message (`sms_sent_segments`, "
                           "`whatsapp_messages`); a refused message costs nothing. 402 "
                           "`insufficient_credits`, 409 `whatsapp_window_closed` (with "
                           "`vendor_code` 131047 when Meta refused), 409 `no_sender_number`, "
                           "502 `vendor_error`."}},
        "/whatsapp/webhook": {
            "get": _op("Meta's verify handshake (hub.mode, hub.verify_token, hub.challenge)",
                       "200", "whatsapp"),
            "post": _op("WhatsApp Cloud API webhook (X-Hub-Signature-256)", "200",
                        "whatsapp")},
        "/twilio/sms": {"post": _op("Twilio inbound SMS webhook (X-Twilio-Signature); "
                                    "empty TwiML", "200", "twilio")},
        "/twilio/sms/status": {"post": _op("Twilio message status callback", "200",
                                           "twilio")},
    },
    "components": {
        "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"},
                            "tenant": {"type": "http", "scheme": "bearer"},
                            "twilio": {"type": "apiKey", "in": "header",
                                       "name": "X-Twilio-Signature"},
                            "whatsapp": {"type": "apiKey", "in": "header",
                                         "name": "X-Hub-Signature-256"}},
        "schemas": {"Problem": {"type": "object", "required": ["code", "status", "detail"],
                                "properties": {"type": {"type": "string"},
                                               "title": {"type": "string"},
                                               "status": {"type": "integer"},
                                               "code": {"type": "string"},
                                               "detail": {"type": "string"},
                                               "field": {"type": "string"}}},
                    "Balance": _BALANCE},
    },
}


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_handler)

"""What the typed API models cost on the messaging hot path, in microseconds per call.

The messaging benchmark's webhooks pass through: the WhatsApp body parsed by the codec
(unchanged: it checks and keeps what it cannot read), and the answer built from the
`WebhookAccepted` model. This measures the model's part against the dicts it replaced,
and what parsing the whole WhatsApp body with a pydantic model would cost beside the
codec (the choice between pydantic and msgspec was made on these figures).

    python -m benchmarks.api_models
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from api.webhook_models import SendMessage, WebhookAccepted
from gateway.codecs import whatsapp
from load.messages import whatsapp_text, whatsapp_value, whatsapp_webhook


class _Text(BaseModel):
    body: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    from_: str
    id: str
    timestamp: str
    type: str
    text: _Text | None = None


class _Value(BaseModel):
    model_config = ConfigDict(extra="allow")
    messaging_product: str
    metadata: dict[str, str]
    messages: list[dict[str, Any]] = []


class _Change(BaseModel):
    value: _Value
    field: str


class _Entry(BaseModel):
    id: str
    changes: list[_Change]


class _Webhook(BaseModel):
    object: str
    entry: list[_Entry]


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    body = orjson.dumps(whatsapp_webhook([whatsapp_value(
        "100000000000001", [whatsapp_text(f"1555010{i:04d}", "hello there") for i in range(10)])]))
    answer = {"messages": 10, "duplicates": 0, "statuses": 0, "rejected": 0}
    message = {"channel": "sms", "to": "+14155550123", "text": "Your order shipped."}
    rows = [
        ("WhatsApp answer: json.dumps(dict), as web.json_response did (before)",
         lambda: json.dumps(answer), 200_000),
        ("WhatsApp answer: orjson.dumps(dict)", lambda: orjson.dumps(answer), 200_000),
        ("WhatsApp answer: WebhookAccepted(...).model_dump_json() (after)",
         lambda: WebhookAccepted(**answer).model_dump_json(), 200_000),
        ("POST /v1/messages body: SendMessage.model_validate(dict)",
         lambda: SendMessage.model_validate(message), 200_000),
        ("WhatsApp body, 10 messages: codec parse_webhook (in use)",
         lambda: whatsapp.parse_webhook(body), 20_000),
        ("WhatsApp body, 10 messages: pydantic model_validate_json (not used)",
         lambda: _Webhook.model_validate_json(body), 20_000),
    ]
    for label, fn, number in rows:
        print(f"{_per_call_us(fn, number):9.2f} us  {label}")


if __name__ == "__main__":
    main()

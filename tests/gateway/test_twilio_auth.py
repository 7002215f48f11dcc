"""Every Twilio webhook answers the same fault the same way: one signature check for the
voice and the SMS channel (docs/voice.md, docs/messaging.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from load.messages import twilio_signature
from tests.gateway.helpers import make_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
WEBHOOKS = ("/twilio/voice", "/twilio/status", "/twilio/sms", "/twilio/sms/status")
FORM = {"CallSid": "CA" + "1" * 32, "MessageSid": "SM" + "1" * 32, "To": "+15550100001",
        "From": "+15550100002", "Body": "hi", "CallStatus": "completed",
        "MessageStatus": "delivered"}


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_a_missing_or_wrong_signature_is_403_on_every_webhook(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str,
    path: str,
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, database_url,
                                                           key_prefix)))
    other_key = twilio_signature(f"https://gw.test{path}", FORM, "another-token")
    for headers in ({}, {"X-Twilio-Signature": "bm90IGl0"},
                    {"X-Twilio-Signature": other_key}):
        response = await client.post(path, data=FORM, headers=headers)
        assert response.status == 403, (path, headers)
        assert (await response.json())["code"] == "invalid_signature"


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_without_a_twilio_token_every_webhook_is_not_configured(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str,
    path: str,
) -> None:
    client = await aiohttp_client(create_app(make_settings(
        redis_url, database_url, key_prefix, twilio_auth_token="")))
    signed = twilio_signature(f"https://gw.test{path}", FORM, "")
    response = await client.post(path, data=FORM, headers={"X-Twilio-Signature": signed})
    assert response.status == 503
    assert (await response.json())["code"] == "channel_not_configured"

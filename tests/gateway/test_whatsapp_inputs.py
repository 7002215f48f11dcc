"""WhatsApp webhooks that are unauthenticated, malformed, oversized or of types the agent
cannot read: each gets the answer Meta expects, and nothing is lost or stored wrongly."""

from __future__ import annotations

import orjson
import pytest

from load.messages import new_wamid, sign_whatsapp, whatsapp_text, whatsapp_value, whatsapp_webhook
from tests.gateway.messaging_env import PHONE_NUMBER_ID, MessagingEnv, one_message

CUSTOMER = "4915112345678"


@pytest.mark.parametrize(
    ("signature", "status", "code"),
    [(None, 401, "missing_signature"), ("sha256=" + "0" * 64, 403, "invalid_signature"),
     ("sha1=abc", 403, "invalid_signature"), ("sha256=é", 403, "invalid_signature")],
)
async def test_bad_or_missing_signature_stores_nothing(messaging_env: MessagingEnv,
                                                       signature: str | None, status: int,
                                                       code: str) -> None:
    env = messaging_env
    env.open_window(CUSTOMER)
    response = await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "hi")]),
                                       signature=signature)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == code
    await env.settle()
    for table in ("messages", "message_statuses", "webhook_rejects"):
        assert await env.count(table) == 0
    assert env.graph_sent() == []


async def test_signature_of_another_body_is_refused(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    body = orjson.dumps(one_message([whatsapp_text(CUSTOMER, "hi")]))
    forged = sign_whatsapp(body.replace(b"hi", b"yo"), "test-whatsapp-app-secret")
    response = await env.post_whatsapp(body, signature=forged)
    assert response.status == 403
    assert await env.count("messages") == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"{not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
     (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
     (b'{"object": "whatsapp_business_account", "entry": {}}', "entry")],
)
async def test_signed_malformed_bodies_are_answered_400_and_kept(
        messaging_env: MessagingEnv, body: bytes, detail: str) -> None:
    env = messaging_env
    for _ in range(2):  # Meta redelivers: kept once
        response = await env.post_whatsapp(body)
        assert response.status == 400
        problem = await response.json()
        assert problem["code"] == "malformed_payload" and detail in problem["detail"]
    rejects = await env.fetch("SELECT channel, payload FROM webhook_rejects")
    assert rejects == [{"channel": "whatsapp", "payload": body.decode()}]


async def test_an_enormous_body_is_refused_unread(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    body = b'{"object": "whatsapp_business_account", "entry": ["' + b"x" * (4 << 20) + b'"]}'
    response = await env.post_whatsapp(body)
    assert response.status == 413
    assert (await response.json())["code"] == "payload_too_large"
    assert await env.count("webhook_rejects") == 0


async def test_unknown_types_and_bad_items_are_recorded_and_acknowledged(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    image, reaction, text = new_wamid(), new_wamid(), new_wamid()
    messages = [
        {"from": CUSTOMER, "id": image, "timestamp": "1749416400", "type": "image",
         "image": {"caption": "receipt", "mime_type": "image/jpeg", "id": "1003383421387256"}},
        {"from": CUSTOMER, "id": reaction, "timestamp": "1749416401", "type": "reaction",
         "reaction": {"message_id": text, "emoji": "\U0001F44D"}},
        {"from": CUSTOMER, "timestamp": "1749416402", "type": "text", "text": {"body": "x"}},
        whatsapp_text(CUSTOMER, "and a real question", text),
    ]
    payload = whatsapp_webhook([whatsapp_value(PHONE_NUMBER_ID, messages),
                                whatsapp_value("999999999", [whatsapp_text(CUSTOMER, "?")])])
    payload["entry"].append({"id": "1", "changes": [{"field": "account_update",
                                                     "value": {"event": "VERIFIED_ACCOUNT"}}]})
    response = await env.post_whatsapp(payload)
    assert response.status == 200
    assert await response.json() == {"messages": 3, "duplicates": 0, "statuses": 0,
                                     "rejected": 3}
    await env.settle()
    states = {r["vendor_id"]: (r["kind"], r["state"]) for r in await env.fetch(
        "SELECT vendor_id, kind, state FROM messages WHERE direction = 'in'")}
    assert states == {image: ("image", "unsupported"), reaction: ("reaction", "unsupported"),
                      text: ("text", "replied")}
    assert len(env.graph_sent(CUSTOMER)) == 1
    reasons = sorted(r["reason"] for r in await env.fetch("SELECT reason FROM webhook_rejects"))
    assert reasons == ["field 'account_update' not handled", "message.id: missing or malformed",
                       "no tenant holds phone_number_id 999999999"]
    assert await env.count("ledger_entries", "kind = 'charge'") == 3  # every message in counts


async def test_a_message_older_than_the_window_is_not_answered(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    old = whatsapp_text(CUSTOMER, "hello?", timestamp_s=1_600_000_000)  # years ago
    await env.post_whatsapp(one_message([old]))
    await env.settle()
    (row,) = await env.fetch("SELECT state FROM messages WHERE direction = 'in'")
    assert row["state"] == "expired"
    assert env.graph_sent() == [] and await env.count("sessions") == 0


async def test_wrong_method_and_content(messaging_env: MessagingEnv) -> None:
    client = messaging_env.client
    assert (await client.put("/whatsapp/webhook")).status == 405
    empty = await messaging_env.post_whatsapp(b"")
    assert empty.status == 400


async def test_nul_characters_are_stored_not_fatal(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    wamid = new_wamid()
    response = await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "a\x00b", wamid)]))
    assert response.status == 200  # PostgreSQL text cannot hold NUL: it is replaced
    await env.settle()
    (row,) = await env.fetch("SELECT body, state FROM messages WHERE vendor_id = $1", wamid)
    assert row == {"body": "a\ufffdb", "state": "replied"}
    bad = b'{"object": "whatsapp_business_account", \x00 not json'
    assert (await env.post_whatsapp(bad)).status == 400
    (reject,) = await env.fetch("SELECT payload FROM webhook_rejects")
    assert "\x00" not in reject["payload"]

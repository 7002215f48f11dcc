"""WhatsApp codec: literal payloads in the shapes of Meta's webhook reference."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs.exceptions import (
    CodecError,
    WhatsAppPayloadError,
    WhatsAppSignatureError,
    WhatsAppSubscriptionError,
)
from gateway.codecs.whatsapp import (
    parse_send_response,
    parse_webhook,
    sign,
    subscription_challenge,
    text_message,
    verify_signature,
)

# A text message, as in Meta's "Text messages" webhook reference.
TEXT_MESSAGE = b"""{
  "object": "whatsapp_business_account",
  "entry": [
    {
      "id": "102290129340398",
      "changes": [
        {
          "value": {
            "messaging_product": "whatsapp",
            "metadata": {
              "display_phone_number": "15550783881",
              "phone_number_id": "106540352242922"
            },
            "contacts": [
              {
                "profile": {
                  "name": "Sheena Nelson"
                },
                "wa_id": "16505551234"
              }
            ],
            "messages": [
              {
                "from": "16505551234",
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                "timestamp": "1749416383",
                "type": "text",
                "text": {
                  "body": "Does it come in another color?"
                }
              }
            ]
          },
          "field": "messages"
        }
      ]
    }
  ]
}"""

# Statuses: delivered with pricing (and the older conversation object), failed with errors.
STATUSES = b"""{
  "object": "whatsapp_business_account",
  "entry": [
    {
      "id": "102290129340398",
      "changes": [
        {
          "value": {
            "messaging_product": "whatsapp",
            "metadata": {
              "display_phone_number": "15550783881",
              "phone_number_id": "106540352242922"
            },
            "statuses": [
              {
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
                "status": "delivered",
                "timestamp": "1750030073",
                "recipient_id": "16505551234",
                "conversation": {
                  "id": "6ceb9d929c1a5e1bd1ea8f3e8fbc1a73",
                  "origin": {
                    "type": "service"
                  }
                },
                "pricing": {
                  "billable": false,
                  "pricing_model": "PMP",
                  "category": "service",
                  "type": "free_customer_service"
                }
              },
              {
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJEMjNGNDI5OTM2RTlDQUNCM0IA",
                "status": "failed",
                "timestamp": "1750030081",
                "recipient_id": "16505551234",
                "errors": [
                  {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {
                      "details": "More than 24 hours have passed since the customer replied."
                    },
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
                  }
                ]
              }
            ]
          },
          "field": "messages"
        }
      ]
    }
  ]
}"""

# A batch: two entries, an image, a reaction, a button reply, a message without an id and
# a change of a field we do not handle.
BATCH = b"""{
  "object": "whatsapp_business_account",
  "entry": [
    {"id": "1", "changes": [{"field": "messages", "value": {
      "messaging_product": "whatsapp",
      "metadata": {"display_phone_number": "15550783881", "phone_number_id": "111"},
      "messages": [
        {"from": "4915112345678", "id": "wamid.A1", "timestamp": "1749416400",
         "type": "image", "image": {"caption": "my receipt", "mime_type": "image/jpeg",
                                    "sha256": "abc", "id": "1003383421387256"}},
        {"from": "4915112345678", "id": "wamid.A2", "timestamp": "1749416401",
         "type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "\\ud83d\\udc4d"}},
        {"from": "4915112345678", "timestamp": "1749416402", "type": "text",
         "text": {"body": "no id"}}
      ]}}]},
    {"id": "2", "changes": [
      {"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000002", "phone_number_id": "222"},
        "messages": [{"from": "4915100000000", "id": "wamid.B1", "timestamp": "1749416403",
                      "type": "interactive", "interactive": {"type": "button_reply",
                      "button_reply": {"id": "yes", "title": "Yes, book it"}}}]}},
      {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    ]}
  ]
}"""


def test_text_message() -> None:
    batch = parse_webhook(TEXT_MESSAGE)
    (message,) = batch.messages
    assert message.phone_number_id == "106540352242922"
    assert message.message_id.startswith("wamid.HBgL")
    assert (message.customer, message.kind, message.text) == (
        "16505551234", "text", "Does it come in another color?")
    assert message.timestamp_s == 1749416383
    assert message.profile_name == "Sheena Nelson"
    assert batch.statuses == () and batch.skipped == ()


def test_statuses_with_pricing_and_errors() -> None:
    delivered, failed = parse_webhook(STATUSES).statuses
    assert delivered.status == "delivered" and delivered.errors == ()
    assert delivered.pricing is not None
    assert (delivered.pricing.billable, delivered.pricing.pricing_model,
            delivered.pricing.category, delivered.pricing.conversation_origin) == (
        False, "PMP", "service", "service")
    assert failed.status == "failed" and failed.pricing is None
    (error,) = failed.errors
    assert error.code == 131047 and error.title == "Re-engagement message"
    assert error.details is not None and "24 hours" in error.details


def test_batch_keeps_what_it_can_and_says_what_it_skipped() -> None:
    batch = parse_webhook(BATCH)
    assert [(m.message_id, m.kind, m.text) for m in batch.messages] == [
        ("wamid.A1", "image", None), ("wamid.A2", "reaction", None),
        ("wamid.B1", "interactive", "Yes, book it")]
    assert [m.phone_number_id for m in batch.messages] == ["111", "111", "222"]
    reasons = sorted(s.reason for s in batch.skipped)
    assert reasons == ["field 'account_update' not handled", "message.id: missing or malformed"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"not json", "not JSON"), (b"[]", "not a JSON object"),
     (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
     (b'{"object": "whatsapp_business_account"}', '"entry"'), (b"", "not JSON")],
)
def test_bad_envelopes_raise(body: bytes, detail: str) -> None:
    with pytest.raises(WhatsAppPayloadError, match=detail):
        parse_webhook(body)


def test_items_of_the_wrong_type_are_skipped_not_raised() -> None:
    body = (b'{"object": "whatsapp_business_account", "entry": [7, {"changes": "x"}, '
            b'{"changes": [3, {"field": "messages", "value": {"metadata": {}}}, '
            b'{"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, '
            b'"messages": [null, {"id": "w", "from": "1", "timestamp": "x", "type": "text"}], '
            b'"statuses": [{"id": "w", "status": "sent"}]}}]}]}')
    batch = parse_webhook(body)
    assert batch.messages == () and batch.statuses == ()
    assert len(batch.skipped) == 7


def test_signature() -> None:
    secret = "app-secret"
    header = sign(TEXT_MESSAGE, secret)
    assert header.startswith("sha256=") and len(header) == 71
    verify_signature(TEXT_MESSAGE, header, secret)
    verify_signature(TEXT_MESSAGE, header.upper().replace("SHA256=", "sha256="), secret)
    with pytest.raises(WhatsAppSignatureError) as missing:
        verify_signature(TEXT_MESSAGE, None, secret)
    assert missing.value.missing
    for bad in (sign(TEXT_MESSAGE + b" ", secret), sign(TEXT_MESSAGE, "other"), "sha256=zz",
                "sha256=é"):
        with pytest.raises(WhatsAppSignatureError) as wrong:
            verify_signature(TEXT_MESSAGE, bad, secret)
        assert not wrong.value.missing
    with pytest.raises(CodecError):
        verify_signature(TEXT_MESSAGE, header, "")  # no secret configured: nothing passes


def test_subscription_handshake() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert subscription_challenge(params, "tok") == "1158201444"
    for changed, reason in (({"hub.verify_token": "nope"}, "mismatch"),
                            ({"hub.mode": "unsubscribe"}, "mismatch"),
                            ({"hub.challenge": ""}, "missing")):
        with pytest.raises(WhatsAppSubscriptionError) as caught:
            subscription_challenge({**params, **changed}, "tok")
        assert caught.value.reason == reason
    with pytest.raises(WhatsAppSubscriptionError):
        subscription_challenge(params, "")


def test_send_request_and_answers() -> None:
    assert text_message("16505551234", "hi") == {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "16505551234", "type": "text", "text": {"preview_url": False, "body": "hi"}}
    ok = parse_send_response(200, b'{"messaging_product": "whatsapp", "contacts": [{"input": '
                                  b'"16505551234", "wa_id": "16505551234"}], "messages": '
                                  b'[{"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0"}]}')
    assert ok.ok and ok.message_id == "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0"
    closed = parse_send_response(400, b'{"error": {"message": "(#131047) Re-engagement message",'
                                      b' "type": "OAuthException", "code": 131047, "error_data":'
                                      b' {"messaging_product": "whatsapp", "details": "Message '
                                      b'failed to send because more than 24 hours have passed"}'
                                      b', "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}')
    assert not closed.ok and closed.window_closed and not closed.retryable
    assert parse_send_response(503, b"<html>").retryable
    assert not parse_send_response(200, b'{"messages": []}').ok


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["object", "entry", "changes", "field", "value", "metadata",
                         "phone_number_id", "messages", "statuses", "id", "from", "type",
                         "timestamp", "text", "body", "errors", "pricing", "code"]),
        inner, max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.booleans())
def test_any_json_either_parses_or_raises_a_payload_error(doc: object, envelope: bool) -> None:
    if envelope and isinstance(doc, list):
        doc = {"object": "whatsapp_business_account", "entry": doc}
    try:
        batch = parse_webhook(json.dumps(doc))  # json: big integers too
    except WhatsAppPayloadError:
        return
    for message in batch.messages:
        assert message.message_id and message.customer and message.phone_number_id

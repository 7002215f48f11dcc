"""Log lines are JSON, carry the context ids, and never hold a secret or a full number."""

from __future__ import annotations

import logging

import orjson

from gateway.logs import JsonFormatter, call_id_var, mask_phone_numbers, tenant_id_var


def _format(message: str, *args: object, secrets: tuple[str, ...] = ()) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    decoded: dict[str, object] = orjson.loads(JsonFormatter(secrets).format(record))
    return decoded


def test_phone_numbers_are_masked() -> None:
    assert mask_phone_numbers("call from +14155550123 to +44 20 7946 0958") == (
        "call from +…23 to +…58"
    )
    assert mask_phone_numbers("order 12345 took 3 s") == "order 12345 took 3 s"


def test_context_ids_and_masking_in_json() -> None:
    tenant_token = tenant_id_var.set("tenant-1")
    call_token = call_id_var.set("CA123")
    try:
        line = _format("caller %s", "+14155550123")
    finally:
        tenant_id_var.reset(tenant_token)
        call_id_var.reset(call_token)
    assert line["msg"] == "caller +…23"
    assert line["tenant_id"] == "tenant-1"
    assert line["call_id"] == "CA123"
    assert line["level"] == "info"


def test_secret_values_never_reach_a_line() -> None:
    line = _format("token is %s", "sk-live-abcdef123456", secrets=("sk-live-abcdef123456",))
    assert line["msg"] == "token is [redacted]"


IDS = [
    "call_CA0d1f5dca7f774f1234567832fe80fc8334b",  # a session id around a CallSid
    "CA1234567890123456789012345678901a",
    "550e8400-e29b-41d4-a716-446655440000",
    "wamid.HBgLMTU1NTAxMDAwMDEVAgASGBQzQTkz+4915112345678Ab==",
    "SM1234567890abcdef1234567890abcdef",
    "MZ9876543210fedcba9876543210fedcba",
]


def test_ids_are_never_rewritten() -> None:
    for value in IDS:
        assert mask_phone_numbers(f"settled {value}: ok") == f"settled {value}: ok"
    token = call_id_var.set(IDS[0])
    try:
        line = _format("call %s for %s ended", IDS[1], IDS[2])
    finally:
        call_id_var.reset(token)
    assert line["call_id"] == IDS[0]
    assert line["msg"] == f"call {IDS[1]} for {IDS[2]} ended"
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "done", (), None)
    record.call_id = IDS[0]
    assert orjson.loads(JsonFormatter().format(record))["call_id"] == IDS[0]


def test_phone_numbers_in_every_form_are_masked() -> None:
    cases = {
        "+14155550123": "+…23",
        "+44 20 7946 0958": "+…58",
        "+1 415-555-0123": "+…23",
        "(415) 555-0123": "+…23",
        "whatsapp:+4915112345678": "whatsapp:+…78",
        "wa_id 4915112345678.": "wa_id +…78.",
        "From=+14155550123&To=x": "From=+…23&To=x",
    }
    for raw, masked in cases.items():
        assert mask_phone_numbers(raw) == masked, raw

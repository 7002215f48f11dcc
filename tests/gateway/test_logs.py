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

"""Session tokens: issue, verify, and every way one is refused."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from gateway.codecs import session_token
from gateway.codecs.exceptions import CodecError, TokenError
from gateway.codecs.session_token import MAX_TOKEN_CHARS, derive_key, issue, verify

KEY = derive_key("a configured secret", "twilio-stream")
NOW = 1_700_000_000.5
CLAIMS: dict[str, str | int] = {"tenant": "t_1", "call": "CA123", "reserved": 4_500}


def reason_of(
    token: str, *, key: bytes = KEY, now_s: float = NOW, purpose: str | None = None
) -> str:
    with pytest.raises(TokenError) as caught:
        if purpose is None:
            verify(key, token, now_s=now_s)
        else:
            verify(key, token, now_s=now_s, purpose=purpose)
    assert isinstance(caught.value, CodecError)
    return caught.value.reason


def flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_issue_and_verify() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW, ttl_s=60)
    assert token.startswith("v1.") and token.count(".") == 2
    claims = verify(KEY, token, now_s=NOW + 59)
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["iat"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_060
    assert claims["purpose"] == "twilio-stream"
    assert isinstance(claims["nonce"], str) and len(claims["nonce"]) >= 16


def test_payload_is_plain_base64url_json() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW)
    payload = token.split(".")[1]
    assert "=" not in payload
    decoded = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded["call"] == "CA123"


def test_every_token_is_different() -> None:
    assert issue(KEY, CLAIMS, now_s=NOW) != issue(KEY, CLAIMS, now_s=NOW)


def test_expired() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW, ttl_s=60)
    assert reason_of(token, now_s=NOW + 60) == "expired"
    assert reason_of(token, now_s=NOW + 3600) == "expired"


def test_wrong_purpose() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW, purpose="admin-link")
    assert reason_of(token) == "wrong_purpose"
    assert verify(KEY, token, now_s=NOW, purpose="admin-link")["purpose"] == "admin-link"


def test_wrong_key() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW)
    assert reason_of(token, key=derive_key("a configured secret", "other-label")) == "bad_signature"
    assert reason_of(token, key=derive_key("another secret", "twilio-stream")) == "bad_signature"


@pytest.mark.parametrize("position", [0, 20, -1])
def test_tampered_payload(position: int) -> None:
    token = issue(KEY, CLAIMS, now_s=NOW)
    version, payload, signature = token.split(".")
    index = position % len(payload)
    assert reason_of(f"{version}.{flip(payload, index)}.{signature}") == "bad_signature"


def test_tampered_payload_claims_re_encoded() -> None:
    token = issue(KEY, CLAIMS, now_s=NOW)
    version, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = "t_2"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert reason_of(f"{version}.{forged}.{signature}") == "bad_signature"


@pytest.mark.parametrize("position", [0, 20, -1])
def test_tampered_signature(position: int) -> None:
    token = issue(KEY, CLAIMS, now_s=NOW)
    head, _, signature = token.rpartition(".")
    index = position % len(signature)
    assert reason_of(f"{head}.{flip(signature, index)}") == "bad_signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.abc",
        "v1.a.b.c",
        "v2.abc.def",
        "v1.é.abc",
        "x" * (MAX_TOKEN_CHARS + 1),
        "v1." + "A" * MAX_TOKEN_CHARS + ".sig",
    ],
)
def test_malformed(token: str) -> None:
    assert reason_of(token) == "malformed"


def test_signed_garbage_payload_is_malformed() -> None:
    # Only a holder of the key could make one, but it must still not crash verify.
    for payload in (b"[]", b"not json", b'{"exp": "soon", "purpose": "twilio-stream"}'):
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        signed = f"v1.{body}"
        token = f"{signed}.{session_token._sign(KEY, signed)}"
        assert reason_of(token) == "malformed"


def test_issue_refuses_reserved_claims_and_empty_keys() -> None:
    with pytest.raises(ValueError, match="exp"):
        issue(KEY, {"exp": 1}, now_s=NOW)
    with pytest.raises(ValueError, match="key"):
        issue(b"", CLAIMS, now_s=NOW)
    with pytest.raises(ValueError, match="exceeds"):
        issue(KEY, {"big": "x" * 2000}, now_s=NOW)


def test_derive_key() -> None:
    assert len(KEY) == 32
    assert derive_key("s", "a") == derive_key("s", "a")
    assert derive_key("s", "a") != derive_key("s", "b")
    assert derive_key("s", "a") != derive_key("t", "a")
    with pytest.raises(ValueError):
        derive_key("", "a")


def test_token_error_message_and_reason() -> None:
    error = TokenError("expired")
    assert error.reason == "expired" and str(error) == "session token expired"
    assert str(TokenError("malformed", "too long")) == "session token malformed: too long"

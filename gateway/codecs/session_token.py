"""Short-lived signed session tokens: the voice webhook (which Twilio signs) hands one to the
media stream (which nobody signs) as a `<Parameter>`, so the websocket can trust the call,
tenant and credit reservation it names.

Format: `v1.<payload>.<signature>`, both parts unpadded base64url. The payload is the JSON
of the claims plus `iat`, `exp` (unix seconds), `purpose` (so a token minted for one use
cannot be replayed for another) and a random `nonce`; the signature is HMAC-SHA256 over
`v1.<payload>`, the version included so it cannot be swapped. Signatures are compared as
text in constant time: a re-encoding of the same bytes (base64 leaves slack in the last
character) is refused, not accepted.

Pure: the caller passes the clock (`now_s`), so expiry is tested without sleeping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.codecs.exceptions import TokenError

__all__ = ["MAX_TOKEN_CHARS", "RESERVED_CLAIMS", "derive_key", "issue", "verify"]

VERSION = "v1"
MAX_TOKEN_CHARS = 2048
RESERVED_CLAIMS = frozenset({"exp", "iat", "purpose", "nonce"})
DEFAULT_PURPOSE = "twilio-stream"


def derive_key(secret: str, label: str) -> bytes:
    """An independent key per `label` from one configured secret: HMAC-SHA256(secret, label)."""
    if not secret:
        raise ValueError("derive_key: the secret is empty")
    return hmac.new(secret.encode(), label.encode(), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _sign(key: bytes, signed: str) -> str:
    return _b64encode(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())


def issue(
    key: bytes,
    claims: Mapping[str, str | int],
    *,
    now_s: float,
    ttl_s: int = 60,
    purpose: str = DEFAULT_PURPOSE,
) -> str:
    """A token carrying `claims`, valid for `ttl_s` seconds from `now_s`, for `purpose` only."""
    if not key:
        raise ValueError("issue: the key is empty")
    clash = RESERVED_CLAIMS.intersection(claims)
    if clash:
        raise ValueError(f"issue: claims may not set {', '.join(sorted(clash))}")
    issued_at = int(now_s)
    payload = {
        **claims,
        "iat": issued_at,
        "exp": issued_at + ttl_s,
        "purpose": purpose,
        "nonce": secrets.token_urlsafe(12),
    }
    signed = f"{VERSION}.{_b64encode(orjson.dumps(payload))}"
    token = f"{signed}.{_sign(key, signed)}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"issue: token of {len(token)} characters exceeds {MAX_TOKEN_CHARS}")
    return token


def verify(
    key: bytes, token: str, *, now_s: float, purpose: str = DEFAULT_PURPOSE
) -> dict[str, Any]:
    """The claims (with iat, exp, purpose, nonce) of a valid token; TokenError otherwise.

    Checked in this order: shape, signature, payload, purpose, expiry, so that nothing but
    the length and the signature is looked at before the signature is known good."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed", f"longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION or not token.isascii():
        raise TokenError("malformed", f"expected {VERSION}.<payload>.<signature>")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(key, signed).encode(), parts[2].encode()):
        raise TokenError("bad_signature")
    try:
        payload = orjson.loads(_b64decode(parts[1]))
    except (binascii.Error, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise TokenError("malformed", "payload is not base64url JSON") from exc
    if not isinstance(payload, dict):
        raise TokenError("malformed", "payload is not an object")
    expires = payload.get("exp")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise TokenError("malformed", "exp is not an integer")
    if payload.get("purpose") != purpose:
        raise TokenError("wrong_purpose", f"issued for {str(payload.get('purpose'))[:40]!r}")
    if now_s >= expires:
        raise TokenError("expired")
    return payload

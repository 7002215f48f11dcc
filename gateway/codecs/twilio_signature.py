"""X-Twilio-Signature: proof that a webhook request came from Twilio.

Twilio signs base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...)) where
`url` is the full URL it requested (query string included) and the POST form parameters
follow sorted by name; a name sent more than once contributes each of its values, sorted.
JSON bodies are not in the signed string: Twilio appends `bodySHA256=<hex sha256 of the
body>` to the URL's query and signs the URL alone (`validate_json_body`).

Twilio is not consistent about ports: it may sign `https://host/x` or `https://host:443/x`
for the same request, so we accept either (`url_variants`), as Twilio's own SDKs do. Like
twilio-python we also accept the URL without an explicit non-default port, which costs
nothing: forging any variant still needs the auth token.

Vectors in the tests come from twilio-python's test suite (tests/unit/test_request_validator.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

from gateway.codecs.exceptions import SignatureError

__all__ = [
    "compute_signature",
    "url_variants",
    "validate",
    "validate_json_body",
    "verify",
]

_DEFAULT_PORTS = {"https": 443, "http": 80}

Params = Mapping[str, str | Sequence[str]]


def _values(value: str | Sequence[str]) -> list[str]:
    # A str is itself a Sequence[str]: test it first or "1234" signs as "1", "2", ...
    return [value] if isinstance(value, str) else sorted(value)


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """The signature Twilio would send for a POST of `params` to exactly this `url`."""
    signed = [url]
    for name in sorted(params):
        signed.extend(name + value for value in _values(params[name]))
    digest = hmac.new(auth_token.encode(), "".join(signed).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_netloc(url: str, netloc: str, new_netloc: str) -> str:
    # Splice rather than urlunsplit, which would normalise the rest of the URL (an empty
    # "?" dropped, say) and so change the string Twilio signed.
    head, sep, tail = url.partition("://")
    return head + sep + new_netloc + tail[len(netloc) :]


def url_variants(url: str) -> list[str]:
    """`url` as given, then with the scheme's default port added (when it has no port) or
    with its port removed (when it has one). Unparseable URLs yield only themselves."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        return variants
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    after_scheme = url.partition("://")[2]
    if scheme not in _DEFAULT_PORTS or not netloc or not after_scheme.startswith(netloc):
        return variants
    if port is None:
        variants.append(_with_netloc(url, netloc, f"{netloc}:{_DEFAULT_PORTS[scheme]}"))
    else:
        variants.append(_with_netloc(url, netloc, netloc.rpartition(":")[0]))
    return variants


def validate(url: str, params: Params, signature: str, auth_token: str) -> bool:
    """True when `signature` matches `params` posted to any variant of `url`."""
    if not signature or not signature.isascii():
        return False
    given = signature.strip().encode("ascii")
    matches = [
        hmac.compare_digest(compute_signature(variant, params, auth_token).encode(), given)
        for variant in url_variants(url)
    ]  # every variant is computed, so timing does not say which one matched
    return any(matches)


def validate_json_body(url: str, body: bytes, signature: str, auth_token: str) -> bool:
    """True for a JSON-bodied webhook: `url` carries bodySHA256 of `body` and is signed."""
    try:
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [])
    except ValueError:
        return False
    if len(claimed) != 1 or not claimed[0].isascii():
        return False
    actual = hashlib.sha256(body).hexdigest().encode("ascii")
    body_ok = hmac.compare_digest(actual, claimed[0].lower().encode("ascii"))
    return validate(url, {}, signature, auth_token) and body_ok


def verify(url: str, params: Params, signature: str | None, auth_token: str) -> None:
    """Like `validate`, for handlers that would rather raise: SignatureError on a mismatch."""
    if not signature:
        raise SignatureError("X-Twilio-Signature header missing")
    if not validate(url, params, signature, auth_token):
        raise SignatureError("X-Twilio-Signature does not match the request")

"""X-Twilio-Signature against Twilio's published vectors.

Unless noted, the vectors are twilio-python's own (tests/unit/test_request_validator.py): auth
token "12345", https://mycompany.com/myapp.php?foo=1&bar=2 and the documented call params.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from gateway.codecs.exceptions import SignatureError
from gateway.codecs.twilio_signature import (
    compute_signature,
    url_variants,
    validate,
    validate_json_body,
    verify,
)

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_published_vector() -> None:
    assert compute_signature(URL, PARAMS, TOKEN) == EXPECTED
    assert validate(URL, PARAMS, EXPECTED, TOKEN)


def test_current_docs_vector() -> None:
    # The example on twilio.com/docs/usage/security today uses ...5310 numbers.
    params = dict(PARAMS, Caller="+14158675310", From="+14158675310")
    assert compute_signature(URL, params, TOKEN) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_the_signed_string_spelled_out() -> None:
    signed = URL + "CallSidCA1234567890ABCDE" + "Caller+14158675309" + "Digits1234"
    signed += "From+14158675309" + "To+18005551212"
    digest = hmac.new(TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    assert base64.b64encode(digest).decode() == EXPECTED


def test_repeated_names_sign_each_value_sorted() -> None:
    params = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
    assert compute_signature(URL, params, TOKEN) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert compute_signature(URL, {**params, "Digits": ("1234", "5678")}, TOKEN) == (
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    )


def test_a_single_string_is_one_value_not_characters() -> None:
    assert compute_signature(URL, {"Digits": "1234"}, TOKEN) == compute_signature(
        URL, {"Digits": ["1234"]}, TOKEN
    )


def test_url_variants() -> None:
    assert url_variants(URL) == [URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2"]
    assert url_variants("http://h.test/x") == ["http://h.test/x", "http://h.test:80/x"]
    assert url_variants("https://h.test:443/x?") == ["https://h.test:443/x?", "https://h.test/x?"]
    assert url_variants("https://u:p@h.test:8443/") == [
        "https://u:p@h.test:8443/",
        "https://u:p@h.test/",
    ]
    assert url_variants("https://[::1]:443/a") == ["https://[::1]:443/a", "https://[::1]/a"]
    assert url_variants("https://h.test:notaport/") == ["https://h.test:notaport/"]
    assert url_variants("wss://h.test/") == ["wss://h.test/"]
    assert url_variants("not a url") == ["not a url"]


def test_port_443_added_or_removed() -> None:
    assert validate(URL, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", TOKEN)  # signed with :443
    assert validate(URL.replace(".com", ".com:443"), PARAMS, EXPECTED, TOKEN)


def test_port_80_added_on_http() -> None:
    http_url = URL.replace("https", "http")
    assert validate(http_url, PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4=", TOKEN)


def test_explicit_other_port() -> None:
    assert validate(URL.replace(".com", ".com:1234"), PARAMS, EXPECTED, TOKEN)  # as the SDK
    http_url = URL.replace(".com", ".com:1234").replace("https", "http")
    assert validate(http_url, PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", TOKEN)


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (URL, dict(PARAMS, Digits="9999"), EXPECTED, TOKEN),
        (URL, {k: v for k, v in PARAMS.items() if k != "To"}, EXPECTED, TOKEN),
        (URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED, TOKEN),
        (URL.replace("https", "http"), PARAMS, EXPECTED, TOKEN),
        (URL, PARAMS, EXPECTED, "54321"),
        (URL, PARAMS, EXPECTED[:-2], TOKEN),
        (URL, PARAMS, "", TOKEN),
        (URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8é", TOKEN),
    ],
)
def test_mismatches(url: str, params: dict[str, str], signature: str, token: str) -> None:
    assert not validate(url, params, signature, token)


def test_surrounding_whitespace_in_the_header_is_ignored() -> None:
    assert validate(URL, PARAMS, f" {EXPECTED}\t", TOKEN)


def test_verify_raises() -> None:
    verify(URL, PARAMS, EXPECTED, TOKEN)
    with pytest.raises(SignatureError, match="missing"):
        verify(URL, PARAMS, None, TOKEN)
    with pytest.raises(SignatureError, match="does not match"):
        verify(URL, PARAMS, "AAAA", TOKEN)


BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def test_json_body_vector() -> None:
    assert hashlib.sha256(BODY).hexdigest() == BODY_HASH
    url = f"{URL}&bodySHA256={BODY_HASH}"
    assert validate_json_body(url, BODY, "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)


def test_json_body_refusals() -> None:
    url = f"{URL}&bodySHA256={BODY_HASH}"
    signature = "a9nBmqA0ju/hNViExpshrM61xv4="
    assert not validate_json_body(url, BODY + b" ", signature, TOKEN)  # body changed
    assert not validate_json_body(URL, BODY, compute_signature(URL, {}, TOKEN), TOKEN)  # no hash
    twice = f"{url}&bodySHA256={BODY_HASH}"
    assert not validate_json_body(twice, BODY, compute_signature(twice, {}, TOKEN), TOKEN)
    assert not validate_json_body(url, BODY, "AAAA", TOKEN)


# The simulated caller signs its webhooks with `load.twilio_wire.signature`, written apart
# from the gateway's codec (load may not import gateway): both must give Twilio's answers.
@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        (URL, PARAMS, EXPECTED),
        (URL, dict(PARAMS, Caller="+14158675310", From="+14158675310"),
         "GvWf1cFY/Q7PnoempGyD5oXAezc="),
        (URL.replace(".com", ".com:443"), PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (URL.replace("https", "http").replace(".com", ".com:80"), PARAMS,
         "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        (URL.replace("https", "http"), PARAMS, None),
        (URL.replace(".com", ".com:1234").replace("https", "http"), PARAMS,
         "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        (f"{URL}&bodySHA256={BODY_HASH}", {}, "a9nBmqA0ju/hNViExpshrM61xv4="),
        ("https://gw.test/twilio/voice", {"Body": "ünïcode & <x>", "To": "+1"}, None),
    ],
)
def test_the_simulated_callers_signature_agrees(
    url: str, params: dict[str, str], expected: str | None
) -> None:
    from load.twilio_wire import signature

    ours = compute_signature(url, params, TOKEN)
    assert signature(url, params, TOKEN) == ours
    if expected is not None:
        assert ours == expected
    assert validate(url, params, signature(url, params, TOKEN), TOKEN)

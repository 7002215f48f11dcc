"""Twilio Messaging codec: the fields of Twilio's inbound-message and status webhooks."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs.exceptions import SmsWebhookError
from gateway.codecs.sms_webhook import (
    parse_inbound,
    parse_send_response,
    parse_status,
    send_form,
)

SID = "SM" + "1f" * 16
# The fields Twilio posts for an incoming SMS (its "webhook request" guide).
INBOUND = {
    "ToCountry": ["US"], "ToState": ["CA"], "SmsMessageSid": [SID], "NumMedia": ["0"],
    "ToCity": ["SAN FRANCISCO"], "FromZip": ["94105"], "SmsSid": [SID], "FromState": ["CA"],
    "SmsStatus": ["received"], "FromCity": ["SAN FRANCISCO"], "Body": ["Hello! 👍"],
    "FromCountry": ["US"], "To": ["+14155550100"], "ToZip": ["94105"], "NumSegments": ["1"],
    "MessageSid": [SID], "AccountSid": ["AC" + "0" * 32], "From": ["+14155550199"],
    "ApiVersion": ["2010-04-01"],
}


def test_inbound() -> None:
    sms = parse_inbound(INBOUND)
    assert (sms.message_sid, sms.sender, sms.to, sms.body) == (
        SID, "+14155550199", "+14155550100", "Hello! 👍")
    assert (sms.num_segments, sms.num_media) == (1, 0)


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
def test_inbound_without_a_required_field(missing: str) -> None:
    with pytest.raises(SmsWebhookError, match=missing):
        parse_inbound({k: v for k, v in INBOUND.items() if k != missing})


def test_inbound_odd_counts_are_ignored_not_trusted() -> None:
    sms = parse_inbound({**INBOUND, "NumSegments": ["many"], "NumMedia": ["-1"]})
    assert (sms.num_segments, sms.num_media) == (None, 0)
    with pytest.raises(SmsWebhookError):
        parse_inbound({**INBOUND, "MessageSid": ["SM123"]})


def test_status_callback() -> None:
    status = parse_status({"MessageSid": [SID], "MessageStatus": ["undelivered"],
                           "ErrorCode": ["30003"], "To": ["+1"], "From": ["+2"]})
    assert (status.status, status.error_code) == ("undelivered", 30003)
    assert parse_status({"MessageSid": [SID], "SmsStatus": ["sent"]}).error_code is None
    with pytest.raises(SmsWebhookError):
        parse_status({"MessageSid": [SID]})


def test_send_form_and_answers() -> None:
    assert send_form("+1", "+2", "hi", "https://gw/twilio/sms/status") == {
        "From": "+1", "To": "+2", "Body": "hi", "StatusCallback": "https://gw/twilio/sms/status"}
    ok = parse_send_response(201, b'{"sid": "' + SID.encode() + b'", "status": "queued", '
                                  b'"num_segments": "2"}')
    assert ok.ok and ok.num_segments == 2
    bad = parse_send_response(400, b'{"code": 21211, "message": "Invalid To", "status": 400}')
    assert not bad.ok and bad.error_code == 21211 and not bad.retryable
    assert parse_send_response(500, b"oops").retryable


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["MessageSid", "From", "To", "Body", "NumSegments",
                                        "NumMedia", "MessageStatus", "ErrorCode", "Other"]),
                       st.lists(st.text(max_size=40), max_size=3), max_size=9))
def test_any_form_either_parses_or_raises_a_webhook_error(form: dict[str, list[str]]) -> None:
    for parse in (parse_inbound, parse_status):
        with contextlib.suppress(SmsWebhookError):
            parse(form)

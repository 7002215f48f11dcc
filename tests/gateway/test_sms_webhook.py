"""SMS end to end: signed Twilio webhooks into the real app, replies through the Twilio
Messages emulator, billed per received and sent segment."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from gateway.messaging import exchange
from load.messages import new_sms_sid, sms_form
from tests.gateway.messaging_env import NUMBER, MessagingEnv
from tests.prom import count

CUSTOMER = "+15550199999"
SEGMENT_IN, SEGMENT_OUT = 200_000_000, 2_500_000_000  # micro-credits


def _twilio_sent(env: MessagingEnv, to: str = CUSTOMER) -> list[dict[str, str]]:
    return [m for m in env.vendors.twilio_messages if m["to"] == to]


async def test_an_sms_gets_one_reply_billed_per_segment(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(10_000)
    sid = new_sms_sid()
    response = await env.post_sms(sms_form(CUSTOMER, NUMBER, "hello " * 40, message_sid=sid,
                                           num_segments=2))
    assert response.status == 200 and response.content_type == "text/xml"
    assert "<Response></Response>" in await response.text()
    await env.settle()
    (reply,) = _twilio_sent(env)
    assert reply["from"] == NUMBER and "voicegw emulator" in reply["body"]
    charge = await env.fetch("SELECT event_id, micro_credits, usage FROM ledger_entries "
                             "WHERE kind = 'charge'")
    assert charge == [{"event_id": f"sms-{sid}:in", "micro_credits": 2 * SEGMENT_IN,
                       "usage": '{"sms_received_segments": 2}'}]
    (session,) = await env.fetch("SELECT channel, usage->>'sms_sent_segments' AS sent, "
                                 "micro_credits FROM sessions")
    assert session["channel"] == "sms" and session["sent"] == "1"
    assert session["micro_credits"] > SEGMENT_OUT  # the segment and the tokens
    out = await env.fetch("SELECT segments, reply_to FROM messages WHERE direction = 'out'")
    assert out == [{"segments": 1, "reply_to": sid}]


async def test_the_same_sms_twice_and_concurrently_gives_one_reply_and_one_charge(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(10_000)
    other = await env.second_gateway()
    form = sms_form(CUSTOMER, NUMBER, "is the shop open today?")
    responses = await asyncio.gather(*(env.post_sms(form, client=c)
                                       for c in (env.client, other) * 3))
    assert all(r.status == 200 for r in responses)
    await env.settle()
    assert len(_twilio_sent(env)) == 1
    assert await env.count("ledger_entries", "kind = 'charge'") == 1
    assert await env.count("sessions") == 1


@pytest.mark.parametrize(("signature", "status", "code"),
                         [(None, 403, "invalid_signature"), ("bm90IGl0", 403,
                                                             "invalid_signature")])
async def test_bad_or_missing_signature_stores_nothing(
        messaging_env: MessagingEnv, signature: str | None, status: int, code: str) -> None:
    env = messaging_env
    response = await env.post_sms(sms_form(CUSTOMER, NUMBER, "hi"), signature=signature)
    assert response.status == status and (await response.json())["code"] == code
    assert await env.count("messages") == 0 and await env.count("webhook_rejects") == 0


async def test_a_signature_over_another_url_is_refused(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    form = sms_form(CUSTOMER, NUMBER, "hi")
    from load.messages import twilio_signature
    from tests.gateway.helpers import TWILIO_AUTH_TOKEN

    wrong = twilio_signature("https://elsewhere.test/twilio/sms", form, TWILIO_AUTH_TOKEN)
    assert (await env.post_sms(form, signature=wrong)).status == 403


async def test_malformed_and_unknown_inputs(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    missing = await env.post_sms({"From": CUSTOMER, "To": NUMBER, "Body": "no sid"})
    assert missing.status == 400 and (await missing.json())["code"] == "malformed_payload"
    nobody = await env.post_sms(sms_form(CUSTOMER, "+15550000000", "wrong number"))
    assert nobody.status == 200  # acknowledged: Twilio cannot do better; kept for operators
    big = await env.client.post("/twilio/sms", data=b"x" * 70_000,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 413
    json_body = await env.client.post("/twilio/sms", json={"MessageSid": "x"},
                                      headers={"X-Twilio-Signature": "x"})
    assert json_body.status == 415
    reasons = sorted(r["reason"] for r in await env.fetch("SELECT reason FROM webhook_rejects"))
    assert reasons == ["MessageSid: missing or malformed", "no tenant holds +155…"]
    assert await env.count("messages") == 0


async def test_status_callbacks_are_recorded_once_per_status(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    sid = new_sms_sid()
    path = "/twilio/sms/status"
    for status in ("queued", "sent", "sent", "undelivered"):
        form = {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER, "From": NUMBER,
                "AccountSid": "AC" + "0" * 32, **({"ErrorCode": "30003"}
                                                   if status == "undelivered" else {})}
        response = await env.post_sms(form, path=path)
        assert response.status == 200
    rows = await env.fetch("SELECT status, errors::text AS errors FROM message_statuses "
                           "ORDER BY received_at")
    assert [r["status"] for r in rows] == ["queued", "sent", "undelivered"]
    assert "30003" in rows[-1]["errors"]


async def test_a_paused_tenant_pays_only_the_received_segments(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.configure(paused_notice="Sorry, we are not answering messages right now.")
    for text in ("hello", "hello again"):
        await env.post_sms(sms_form(CUSTOMER, NUMBER, text, num_segments=1))
        await env.settle()
    assert env.emulators.config.chat.requests == []
    assert [m["body"] for m in _twilio_sent(env)] == [
        "Sorry, we are not answering messages right now."]  # once, free
    assert await env.count("ledger_entries", "micro_credits > 0") == 0  # nothing to pay with
    assert await env.count("messages", "charge_pending") == 2
    await env.topup(1000)  # the received segments are charged once it tops up
    assert await exchange.retry_pending_charges(env.m) == 2
    await env.settle()
    charged = await env.fetch("SELECT micro_credits FROM ledger_entries WHERE kind = 'charge' "
                              "AND micro_credits > 0")
    assert [c["micro_credits"] for c in charged] == [SEGMENT_IN, SEGMENT_IN]
    assert await env.count("messages", "charge_pending") == 0
    notice = await env.fetch("SELECT units, micro_credits FROM usage_events "
                             "WHERE meter = 'sms_sent_segments'")
    assert notice == [{"units": 1, "micro_credits": 0}]  # counted, never billed


async def test_too_little_credit_for_a_reply_still_pays_what_was_received(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(300)  # a received segment (200) but not a reply (2,500)
    await env.post_sms(sms_form(CUSTOMER, NUMBER, "hello", num_segments=1))
    await env.settle()
    assert _twilio_sent(env) == [] and env.emulators.config.chat.requests == []
    charged = await env.fetch("SELECT micro_credits FROM ledger_entries")
    assert charged == [{"micro_credits": SEGMENT_IN}]
    (row,) = await env.fetch("SELECT state, error FROM messages")
    assert row["state"] == "paused"


async def test_a_reply_not_sent_for_lack_of_credit_is_logged_recorded_counted_and_shown(
        messaging_env: MessagingEnv, caplog: pytest.LogCaptureFixture) -> None:
    env = messaging_env
    await env.topup(2_000)  # chat tokens, a received segment, but not one sent segment
    balance = await (await env.client.get("/v1/balance", headers=env.auth)).json()
    assert balance["paused"] is False and balance["paused_channels"] == ["sms"]
    sid = new_sms_sid()
    with caplog.at_level(logging.WARNING, logger="voicegw.messaging"):
        await env.post_sms(sms_form(CUSTOMER, NUMBER, "hello", message_sid=sid,
                                    num_segments=1))
        await env.settle()
    assert _twilio_sent(env) == []
    (row,) = await env.fetch("SELECT state, error FROM messages WHERE vendor_id = $1", sid)
    assert row["state"] == "paused"
    assert json.loads(row["error"]) == {
        "reason": "insufficient_credit", "needed_micro_credits": SEGMENT_OUT + 20_000_000,
        "available_micro_credits": 2_000_000_000 - SEGMENT_IN}
    assert count(env.m.unsent, channel="sms", reason="insufficient_credit") == 1
    (line,) = [r for r in caplog.records if r.__dict__.get("event") == "reply_not_sent"]
    assert sid in line.getMessage() and "1800000000 micro-credits available" in \
        line.getMessage()
    empty = await (await env.client.get("/v1/balance", headers=env.auth)).json()
    assert empty["paused_channels"] == ["sms"]  # 1,800 credits still run phone and chat


async def test_a_long_reply_is_cut_to_what_the_credit_buys(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(3 * 200 + 2_500 + 100)  # three received segments, one sent, the tokens
    # The LLM emulator echoes the first twelve words: a reply of about 450 characters.
    long_question = " ".join(["Donaudampfschifffahrtsgesellschaftskapitän"] * 12)
    await env.post_sms(sms_form(CUSTOMER, NUMBER, long_question, num_segments=3))
    await env.settle()
    (reply,) = _twilio_sent(env)
    assert len(reply["body"]) == 153  # the first part of a GSM-7 split (ä is GSM-7)
    assert reply["body"].startswith("This is the voicegw emulator.")
    (row,) = await env.fetch("SELECT segments FROM messages WHERE direction = 'out'")
    assert row["segments"] == 1


async def test_sms_through_the_api_is_billed_per_segment(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(10_000)
    response = await env.client.post("/v1/messages", headers=env.auth, json={
        "channel": "sms", "to": CUSTOMER, "text": "Ihr Termin: morgen 15 Uhr. " * 7})
    body = await response.json()
    assert response.status == 201, body
    assert body["segments"] == 2 and body["micro_credits"] == 2 * SEGMENT_OUT
    assert body["credits"] == "5000.000000"
    await env.settle()
    usage = await env.fetch("SELECT units, micro_credits FROM usage_events "
                            "WHERE meter = 'sms_sent_segments'")
    assert usage == [{"units": 2, "micro_credits": 2 * SEGMENT_OUT}]

"""WhatsApp and SMS conversations end to end: real signed webhooks into the gateway, the
text agent against the LLM emulator, replies through the vendor emulators, real Redis and
PostgreSQL; read back through the conversations API."""

from __future__ import annotations

import datetime as dt
import time
import uuid
import zoneinfo
from typing import Any

import orjson

from gateway.messaging.conversations import CSAT_TEXT, conversation_pass
from gateway.voice.stream import caller_hash
from load.messages import sms_form, whatsapp_text
from metering.notify.endpoints import create_endpoint
from tests.gateway.messaging_env import NUMBER, MessagingEnv, one_message

CUSTOMER = "4915112345678"
SMS_CUSTOMER = "+15557654321"


async def _say(env: MessagingEnv, text: str, at_s: int | None = None) -> None:
    env.open_window(CUSTOMER)
    response = await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, text,
                                                                   timestamp_s=at_s)]))
    assert response.status == 200, await response.text()
    await env.settle()


async def _get(env: MessagingEnv, path: str, **params: str) -> Any:
    response = await env.client.get(path, params=params, headers=env.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _subscribe(env: MessagingEnv) -> None:
    await create_endpoint(env.m.pool, env.tenant, "http://127.0.0.1:9/hook",
                          ["session.completed"], allow_private=True)


async def _completed_events(env: MessagingEnv) -> list[dict[str, Any]]:
    rows = await env.fetch("SELECT body FROM webhook_messages "
                           "WHERE event_type = 'session.completed' ORDER BY id")
    return [orjson.loads(bytes(row["body"]))["data"] for row in rows]


async def test_whatsapp_messages_within_the_idle_window_are_one_conversation(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    await _subscribe(env)
    start = int(time.time())
    await _say(env, "hello, do you open on saturday?", start)
    await _say(env, "I would like to book an appointment tomorrow at 3pm", start + 60)
    listed = await _get(env, "/v1/conversations")
    (conversation,) = listed["conversations"]
    assert listed["next_cursor"] is None
    assert conversation["channel"] == "whatsapp" and conversation["direction"] == "inbound"
    assert conversation["ended_at"] is None and conversation["successes"] == 0
    assert conversation["customer"]["masked"] == "+4915***5678"
    # The phone channel's caller hash: the same customer calling is the same customer.
    assert conversation["customer"]["hash"] == caller_hash(str(env.tenant), f"+{CUSTOMER}")
    assert conversation["first_response_ms"] is not None
    full = await _get(env, f"/v1/conversations/{conversation['id']}")
    roles = [t["role"] for t in full["transcript"]]
    assert roles == ["customer", "agent", "customer", "agent"]
    assert full["transcript"][0]["text"] == "hello, do you open on saturday?"
    assert full["transcript"][0]["started_at"] == dt.datetime.fromtimestamp(
        start, dt.UTC).isoformat()
    assert "confirmed" in full["transcript"][3]["text"]
    (booking,) = full["tool_calls"]
    assert booking["name"] == "book_appointment"
    assert booking["arguments"]["when"] == "tomorrow at 3pm"
    assert booking["result"]["status"] == "confirmed"
    # The credits are the exchanges' own, as settled.
    billed = await env.m.pool.fetchval("SELECT sum(micro_credits) FROM sessions")
    assert full["micro_credits"] == billed > 0

    # 40 minutes later (the tenant's window is 30): a new conversation. The job closes
    # the first at its last message, with the outcomes from the ledger and a summary.
    await _say(env, "one more question please", start + 60 + 40 * 60)
    # (The messages carry the vendor's times, ahead of the wall clock here: the job runs
    # at a time a minute past the first conversation's window.)
    closed = await conversation_pass(env.m, dt.datetime.fromtimestamp(start + 60 + 31 * 60,
                                                                      dt.UTC))
    assert closed == 1
    listed = await _get(env, "/v1/conversations")
    newer, older = listed["conversations"]
    assert older["id"] == conversation["id"] and newer["ended_at"] is None
    assert dt.datetime.fromisoformat(older["ended_at"]) == max(
        dt.datetime.fromisoformat(t["ended_at"]) for t in full["transcript"])
    assert older["disposition"] == "completed" and older["successes"] == 1
    assert [o["kind"] for o in older["outcomes"]] == ["appointment_booked"]
    assert older["summary"] and "emulator" in older["summary"]
    # Each exchange's credit session has its own event; the conversation's carries its id.
    (event,) = [e for e in await _completed_events(env) if e["conversation_id"]]
    assert event["conversation_id"] == older["id"] and event["summary"] == older["summary"]
    assert [o["kind"] for o in event["outcomes"]] == ["appointment_booked"]
    # The summary's tokens are metered on their own meter: free, but counted.
    await env.settle()
    (charge,) = await env.fetch("SELECT meter, units, micro_credits FROM usage_events "
                                "WHERE event_id LIKE $1", f"sum-{older['id']}%")
    assert charge["meter"] == "summary_tokens" and charge["units"] > 0
    assert charge["micro_credits"] == 0
    # A pass at the same time finds nothing more to close: settled once.
    assert await conversation_pass(env.m, dt.datetime.fromtimestamp(start + 60 + 31 * 60,
                                                                    dt.UTC)) == 0


async def test_end_call_closes_a_text_conversation_and_asks_for_a_rating_once(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    patched = await env.client.patch("/v1/settings", json={"csat_enabled": True,
                                                           "mask_transcripts": True},
                                     headers=env.auth)
    assert patched.status == 200, await patched.text()
    env.m.profiles._cache.clear()
    await _say(env, "my number is +49 151 1234 5678, mail me at jane.doe@example.com")
    await _say(env, "thanks, goodbye")
    (conversation,) = (await _get(env, "/v1/conversations"))["conversations"]
    assert conversation["ended_at"] is not None and conversation["resolved"] is True
    assert conversation["summary"]
    sent = [m["text"] for m in env.graph_sent(CUSTOMER)]
    assert sent[-1] == CSAT_TEXT and sent.count(CSAT_TEXT) == 1
    full = await _get(env, f"/v1/conversations/{conversation['id']}")
    first = full["transcript"][0]["text"]
    assert "1234" not in first and "jane.doe" not in first and "@example.com" in first
    # The answer is recorded once; it is not a new conversation and gets no agent reply.
    await _say(env, "4")
    await _say(env, "5")
    conversations = (await _get(env, "/v1/conversations"))["conversations"]
    rated = [c["rating"] for c in conversations if c["id"] == conversation["id"]]
    assert rated == [4]
    assert len(conversations) == 2  # "5" came after the rating: a message like any other
    assert await env.count("messages", "direction = 'in' AND state = 'rated'") == 1


async def test_sms_conversation_and_the_filters_of_the_list_and_the_csv(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(10_000)  # an SMS reply holds enough for a few segments
    response = await env.post_sms(sms_form(SMS_CUSTOMER, NUMBER, "my heater is broken"))
    assert response.status == 200, await response.text()
    await env.settle()
    await _say(env, "just saying hello")
    everything = (await _get(env, "/v1/conversations"))["conversations"]
    assert sorted(c["channel"] for c in everything) == ["sms", "whatsapp"]
    sms = (await _get(env, "/v1/conversations", channel="sms"))["conversations"]
    assert [c["channel"] for c in sms] == ["sms"]
    assert sms[0]["customer"]["masked"] == "+1555***4321"
    # The ticket is a success only once the conversation settled.
    await conversation_pass(env.m, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31))
    with_success = (await _get(env, "/v1/conversations", has_success="true"))["conversations"]
    assert [c["channel"] for c in with_success] == ["sms"]
    without = (await _get(env, "/v1/conversations", has_success="false"))["conversations"]
    assert [c["channel"] for c in without] == ["whatsapp"]
    today = dt.date.today().isoformat()
    ranged = await _get(env, "/v1/conversations", **{"from": today, "to": today})
    assert len(ranged["conversations"]) == 2
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert (await _get(env, "/v1/conversations", **{"from": tomorrow}))["conversations"] == []
    paged = await _get(env, "/v1/conversations", limit="1")
    second = await _get(env, "/v1/conversations", limit="1", cursor=paged["next_cursor"])
    assert paged["conversations"][0]["id"] != second["conversations"][0]["id"]
    assert second["next_cursor"] is None
    response = await env.client.get("/v1/conversations.csv", params={"channel": "sms"},
                                    headers=env.auth)
    assert response.status == 200 and response.content_type == "text/csv"
    lines = (await response.text()).splitlines()
    assert lines[0].startswith("id,channel,direction,customer,started_at")
    assert len(lines) == 2 and ",sms,inbound,'+1555***4321," in lines[1]
    assert "ticket_created" in lines[1]


async def test_bad_parameters_are_422_naming_them_and_other_tenants_get_404(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    await _say(env, "hello")
    (conversation,) = (await _get(env, "/v1/conversations"))["conversations"]
    for params, field in [({"from": "2026-13-01"}, "from"), ({"to": "yesterday"}, "to"),
                          ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
                          ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),
                          ({"channel": "fax"}, "channel"), ({"has_success": "maybe"},
                                                             "has_success"),
                          ({"cursor": "not-a-cursor"}, "cursor"), ({"limit": "0"}, "limit"),
                          ({"to": "9999-12-31"}, "to"), ({"from": "0001-01-01"}, "from")]:
        for path in ("/v1/conversations", "/v1/conversations.csv"):
            response = await env.client.get(path, params=params, headers=env.auth)
            assert response.status == 422, (path, params, await response.text())
            assert (await response.json())["field"] == field, (path, params)
    created = await env.client.post("/admin/tenants", json={"name": "Other"},
                                    headers={"Authorization": "Bearer test-admin-token-0123456789"})
    other = {"Authorization": f"Bearer {(await created.json())['api_key']}"}
    response = await env.client.get(f"/v1/conversations/{conversation['id']}", headers=other)
    assert response.status == 404
    assert (await (await env.client.get("/v1/conversations", headers=other)).json()) == {
        "conversations": [], "next_cursor": None}
    response = await env.client.get(f"/v1/conversations/{uuid.uuid4()}", headers=env.auth)
    assert response.status == 404
    response = await env.client.get("/v1/conversations/not-a-uuid", headers=env.auth)
    assert response.status == 404


async def test_settings_are_read_and_changed_by_the_tenant_and_checked(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    settings = await _get(env, "/v1/settings")
    assert settings == {"timezone": "UTC", "conversation_idle_minutes": 30,
                        "transcript_retention_days": 90, "mask_transcripts": False,
                        "csat_enabled": False, "service_level_s": 20, "report_emails": []}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"conversation_idle_minutes": 0}, "conversation_idle_minutes"),
        ({"transcript_retention_days": "90"}, "transcript_retention_days"),
        ({"csat_enabled": "yes"}, "csat_enabled"),
        ({"report_emails": ["nobody"]}, "report_emails"),
        ({"colour": "red"}, "colour")]
    for body, field in bad:
        response = await env.client.patch("/v1/settings", json={"service_level_s": 30, **body},
                                          headers=env.auth)
        assert response.status == 422, body
        assert (await response.json())["field"] == field
    assert await _get(env, "/v1/settings") == settings  # nothing changed
    response = await env.client.patch("/v1/settings", headers=env.auth, json={
        "timezone": "America/New_York", "conversation_idle_minutes": 5,
        "report_emails": ["boss@example.com"]})
    assert response.status == 200
    changed = await response.json()
    assert changed["timezone"] == "America/New_York" and changed["service_level_s"] == 20
    assert changed["conversation_idle_minutes"] == 5
    admin = {"Authorization": "Bearer test-admin-token-0123456789"}
    response = await env.client.get(f"/admin/tenants/{env.tenant}/settings", headers=admin)
    assert await response.json() == changed
    response = await env.client.patch(f"/admin/tenants/{uuid.uuid4()}/settings",
                                      json={"csat_enabled": True}, headers=admin)
    assert response.status == 404
    response = await env.client.get("/v1/settings", headers={"Authorization": "Bearer nope"})
    assert response.status == 401


async def test_date_filters_are_days_of_the_tenant_time_zone(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    # A zone where that moment falls on another day than in UTC (+14 or -11 hours).
    zone = "Pacific/Kiritimati" if at.hour >= 10 else "Pacific/Pago_Pago"
    local_day = at.astimezone(zoneinfo.ZoneInfo(zone)).date()
    assert local_day != at.date()
    response = await env.client.patch("/v1/settings", json={"timezone": zone},
                                      headers=env.auth)
    assert response.status == 200
    await _say(env, "hello", int(at.timestamp()))
    for day, found in [(local_day, 1), (at.date(), 0)]:
        listed = await _get(env, "/v1/conversations",
                            **{"from": day.isoformat(), "to": day.isoformat()})
        assert len(listed["conversations"]) == found, (zone, day)


async def test_a_conversation_closed_without_its_summary_gets_it_on_a_later_pass(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    await _subscribe(env)
    start = int(time.time())
    await _say(env, "hello there", start)
    # The process that closed it died before the summary: only the close happened.
    from metering.conversations import store

    (closed,) = await store.close_text(env.m.pool, now=dt.datetime.fromtimestamp(
        start + 31 * 60, dt.UTC))
    assert closed.summary is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    await conversation_pass(env.m, later)
    await conversation_pass(env.m, later)  # idempotent: one summary, one webhook
    (conversation,) = (await _get(env, "/v1/conversations"))["conversations"]
    assert conversation["summary"]
    assert len([e for e in await _completed_events(env) if e["conversation_id"]]) == 1


async def test_a_settled_whatsapp_conversation_counts_in_the_kpis(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    start = int(time.time()) - 3600
    await _say(env, "I would like to book an appointment tomorrow at 3pm", start)
    today = dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()
    kpis = await _get(env, "/v1/kpis", **{"from": today, "to": today})
    assert kpis["totals"]["conversations"] == 0  # open: not counted yet
    await conversation_pass(env.m, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31))
    kpis = await _get(env, "/v1/kpis", **{"from": today, "to": today})
    totals = kpis["totals"]
    assert totals["conversations"] == 1 and totals["successes"] == 1
    assert totals["appointments"] == 1 and totals["success_rate"] == 1
    assert kpis["channel_mix"] == {"phone": 0, "whatsapp": 1, "sms": 0, "web": 0}

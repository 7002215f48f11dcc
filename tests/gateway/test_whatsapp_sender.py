"""`python -m load.messages` against a real gateway app and the emulators: its signatures
are accepted, duplicates are absorbed, and every message gets exactly one reply."""

from __future__ import annotations

from load.messages import parser, run
from tests.gateway.helpers import TWILIO_AUTH_TOKEN
from tests.gateway.messaging_env import APP_SECRET, NUMBER, PHONE_NUMBER_ID, MessagingEnv


async def test_the_sender_gets_one_reply_per_message_despite_duplicates(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100_000)  # 12 SMS exchanges cost about 2,750 credits each
    gateway = str(env.client.make_url("")).rstrip("/")
    common = ["--gateway", gateway, "--public-url", "https://gw.test", "--duplicates", "0.5",
              "--emulator", env.emulators.base, "--wait-s", "30", "--customers", "7"]
    whatsapp = await run(parser().parse_args([
        *common, "--channel", "whatsapp", "--messages", "40", "--batch", "8",
        "--app-secret", APP_SECRET, "--phone-number-id", PHONE_NUMBER_ID]))
    assert set(whatsapp.statuses) == {200} and whatsapp.webhooks >= 5
    assert whatsapp.replies == 40
    sms = await run(parser().parse_args([
        *common, "--channel", "sms", "--messages", "12", "--to", NUMBER,
        "--twilio-auth-token", TWILIO_AUTH_TOKEN]))
    assert set(sms.statuses) == {200} and sms.replies == 12
    await env.settle()
    assert len(env.vendors.graph_messages) == 40 and len(env.vendors.twilio_messages) == 12
    assert await env.count("messages", "direction = 'in'") == 52
    assert await env.count("sessions") == 52
    assert "replies seen      40" in "\n".join(whatsapp.lines())

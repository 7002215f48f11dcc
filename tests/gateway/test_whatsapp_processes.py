"""Two gateway processes (this test's app and a real `voicegw serve` child process) on the
same Redis and PostgreSQL get the same webhooks at the same time: one reply and one
charge per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from gateway.embedded import free_port
from load.messages import sign_whatsapp, whatsapp_text
from tests.gateway.helpers import start_serve
from tests.gateway.messaging_env import APP_SECRET, MessagingEnv, one_message
from tests.prom import sample


@pytest.fixture
async def child_gateway(messaging_env: MessagingEnv) -> AsyncIterator[str]:
    """`python -m gateway.cli serve` with the test app's settings, on its own port."""
    port = free_port()
    child = await start_serve(messaging_env.settings, port, asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 30)


async def test_one_reply_per_message_across_two_os_processes(
        messaging_env: MessagingEnv, child_gateway: str) -> None:
    env = messaging_env
    await env.topup(1000)
    customer = "4915100000001"
    env.open_window(customer)
    bodies = [orjson.dumps(one_message([whatsapp_text(customer, f"question {n}")]))
              for n in range(10)]

    async with aiohttp.ClientSession() as http:
        async def to_child(body: bytes) -> int:
            async with http.post(f"{child_gateway}/whatsapp/webhook", data=body, headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign_whatsapp(body, APP_SECRET)}) as response:
                return response.status

        async def to_us(body: bytes) -> int:
            return (await env.post_whatsapp(body)).status

        statuses = await asyncio.gather(*(send(body) for body in bodies
                                          for send in (to_child, to_us, to_child, to_us)))
    assert set(statuses) == {200}
    deadline = time.monotonic() + 30
    while await env.count("messages", "direction = 'in' AND state = 'replied'") < 10:
        assert time.monotonic() < deadline, "the replies did not all arrive"
        await asyncio.sleep(0.1)
    await env.settle()
    await asyncio.sleep(0.5)  # a duplicate reply, were there one, would have arrived by now
    assert len(env.graph_sent(customer)) == 10
    assert await env.count("messages", "direction = 'out'") == 10
    assert await env.count("ledger_entries", "kind = 'charge'") == 10
    assert await env.count("sessions") == 10
    replied = 0
    async with aiohttp.ClientSession() as http:
        for base in (child_gateway, str(env.client.make_url("")).rstrip("/")):
            async with http.get(f"{base}/metrics") as response:
                replied += _replies_counted(await response.text())
    assert replied == 10  # the two processes' replies together, each message once


def _replies_counted(metrics: str) -> int:
    return int(sample(metrics, "voicegw_messages_total", channel="whatsapp",
                      outcome="replied") or 0)

"""Webhook throughput of the messaging channels: messages per second per gateway core, from
the signed webhook to the reply accepted by the vendor (emulator).

The gateway runs as its own process (`python -m gateway.cli serve`, the outbox sink
inside it, as in production) on real Redis and PostgreSQL; the vendor emulators (LLM with
no artificial latency, Graph API, Twilio Messages) and the sender run in this process.
The gateway's CPU time is read from /proc, so "per core" is messages per gateway
CPU-second, independent of what else shares the machine; the wall-clock rate is printed
beside it. Every message is a full exchange: dedupe insert, inbound charge, window,
credit reservation, one LLM completion, the vendor send, settlement, history.

    python -m benchmarks.messaging --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import orjson

from benchmarks.common import drop_redis_prefix, wait_ready
from gateway.embedded import LocalServers, free_port
from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, RunningEmulators, start_emulators
from load.messages import (
    sign_whatsapp,
    sms_form,
    twilio_signature,
    whatsapp_text,
    whatsapp_value,
    whatsapp_webhook,
)
from metering.migrate import migrate_url

ADMIN, SECRET, GRAPH, TWILIO_TOKEN = "bench-admin-token-0123456789", "bench-secret", "g", "t"
ACCOUNT, PHONE_ID, NUMBER = "AC" + "0" * 32, "100000000000001", "+15550100001"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    messages: int
    per_webhook: int
    wall_s: float
    gateway_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.messages / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.messages / self.gateway_cpu_s


def _profiler() -> list[str]:
    """`VOICEGW_BENCH_PROFILE=out.prof` runs the gateway under cProfile."""
    target = os.environ.get("VOICEGW_BENCH_PROFILE")
    return ["-m", "cProfile", "-o", target] if target else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _gateway_env(redis_url: str, database_url: str, port: int, urls: dict[str, str],
                 prefix: str) -> dict[str, str]:
    return {**os.environ, "VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
            "VOICEGW_PUBLIC_URL": f"http://127.0.0.1:{port}", "VOICEGW_ADMIN_TOKEN": ADMIN,
            "VOICEGW_HOST": "127.0.0.1", "VOICEGW_PORT": str(port),
            "VOICEGW_REDIS_PREFIX": prefix,
            "VOICEGW_LOG_LEVEL": "WARNING", "VOICEGW_MIGRATE_ON_START": "false",
            "VOICEGW_OPENAI_API_KEY": "k", "VOICEGW_OPENAI_BASE_URL": urls["openai"],
            "VOICEGW_GRAPH_API_BASE": urls["graph"], "VOICEGW_WHATSAPP_APP_SECRET": SECRET,
            "VOICEGW_WHATSAPP_ACCESS_TOKEN": GRAPH, "VOICEGW_WHATSAPP_VERIFY_TOKEN": "v",
            "VOICEGW_TWILIO_API_BASE": urls["twilio"], "VOICEGW_TWILIO_ACCOUNT_SID": ACCOUNT,
            "VOICEGW_TWILIO_AUTH_TOKEN": TWILIO_TOKEN}



async def _tenant(http: aiohttp.ClientSession, base: str, database_url: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with http.post(f"{base}/admin/tenants", json={"name": "Bench"}, headers=admin) as r:
        tenant = await r.json()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO phone_numbers (phone_number, tenant_id, kind, "
                           "whatsapp_phone_number_id) VALUES ($1, $2::uuid, 'mobile', $3)",
                           NUMBER, tenant["id"], PHONE_ID)
    finally:
        await conn.close()
    auth = {"Authorization": f"Bearer {tenant['api_key']}", "Idempotency-Key": "bench"}
    async with http.post(f"{base}/v1/topups", json={"credits": 10_000_000}, headers=auth) as r:
        assert r.status == 201, await r.text()


def _whatsapp_bodies(count: int, batch: int, customers: list[str]
                     ) -> list[tuple[bytes, dict[str, str]]]:
    bodies = []
    for start in range(0, count, batch):
        messages = [whatsapp_text(customers[(start + i) % len(customers)], f"hello {start + i}")
                    for i in range(min(batch, count - start))]
        body = orjson.dumps(whatsapp_webhook([whatsapp_value(PHONE_ID, messages)]))
        bodies.append((body, {"Content-Type": "application/json",
                              "X-Hub-Signature-256": sign_whatsapp(body, SECRET)}))
    return bodies


def _sms_bodies(count: int, base: str) -> list[tuple[bytes, dict[str, str]]]:
    bodies = []
    for n in range(count):
        form = sms_form(f"+1555{n % 500:07d}", NUMBER, f"hello {n}", account_sid=ACCOUNT,
                        num_segments=1)
        bodies.append((urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(f"{base}/twilio/sms", form, TWILIO_TOKEN)}))
    return bodies


def _sent(emulators: RunningEmulators) -> int:
    state = emulators.config.vendors
    return len(state.graph_messages) + len(state.twilio_messages)


async def _drive(http: aiohttp.ClientSession, url: str,
                 bodies: list[tuple[bytes, dict[str, str]]], replies: int,
                 emulators: RunningEmulators, concurrency: int) -> None:
    goal = _sent(emulators) + replies
    limit = asyncio.Semaphore(concurrency)

    async def post(body: bytes, headers: dict[str, str]) -> None:
        async with limit, http.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}: {await response.text()}")

    await asyncio.gather(*(post(body, headers) for body, headers in bodies))
    deadline = time.monotonic() + 300
    while _sent(emulators) < goal:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_sent(emulators) - goal + replies} of {replies} replies")
        await asyncio.sleep(0.01)


async def _measure(channel: str, http: aiohttp.ClientSession, base: str, pid: int,
                   emulators: RunningEmulators, messages: int, batch: int,
                   concurrency: int) -> ChannelResult:
    customers = [f"49151{n:07d}" for n in range(500)]
    state = emulators.config.vendors
    for customer in customers:
        state.windows[(PHONE_ID, customer)] = state.clock()
    path = "/whatsapp/webhook" if channel == "whatsapp" else "/twilio/sms"
    per_webhook = batch if channel == "whatsapp" else 1

    def bodies(count: int) -> list[tuple[bytes, dict[str, str]]]:
        if channel == "whatsapp":
            return _whatsapp_bodies(count, batch, customers)
        return _sms_bodies(count, base)

    await _drive(http, base + path, bodies(min(200, messages)), min(200, messages), emulators,
                 concurrency)  # warm-up: connections, caches, JIT-free but still cold paths
    measured = bodies(messages)
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    await _drive(http, base + path, measured, messages, emulators, concurrency)
    return ChannelResult(channel, messages, per_webhook, time.perf_counter() - started,
                         cpu_seconds(pid) - cpu_before)


async def run(redis_url: str, server_url: str, *, messages: int = 2000, batch: int = 10,
              concurrency: int = 16) -> list[ChannelResult]:
    name = f"vgw_bench_msg_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = server_url.rsplit("/", 1)[0] + "/" + name
    await migrate_url(database_url)
    emulators = await start_emulators(config=EmulatorConfig(
        ChatState(ChatTiming(0, 0)),
        VendorState(twilio_accounts={ACCOUNT: TWILIO_TOKEN}, graph_token=GRAPH)))
    port = free_port()
    prefix = f"vgwbench:{uuid.uuid4().hex[:8]}:"
    gateway = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [sys.executable, *_profiler(), "-m", "gateway.cli", "serve"], stdin=subprocess.DEVNULL,
        env=_gateway_env(redis_url, database_url, port, emulators.base_urls(), prefix))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            await wait_ready(http, base, gateway)
            await _tenant(http, base, database_url)
            return [await _measure(channel, http, base, gateway.pid, emulators, messages,
                                   batch, concurrency) for channel in ("whatsapp", "sms")]
    finally:
        gateway.terminate()
        await asyncio.to_thread(gateway.wait, 30)
        await emulators.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await drop_redis_prefix(redis_url, prefix)



def rows(results: list[ChannelResult]) -> list[str]:
    return [f"| messaging, {r.channel} messages per gateway CPU-second, webhook to reply sent "
            f"({r.messages:,} messages, {r.per_webhook} per webhook) | {r.per_cpu_s:,.0f} | |"
            f"\n| messaging, {r.channel} messages per wall second | {r.per_s:,.0f} | |"
            for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.messaging",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10, help="WhatsApp messages per webhook")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        results = asyncio.run(run(servers.redis_url, servers.postgres_url,
                                  messages=args.messages, batch=args.batch,
                                  concurrency=args.concurrency))
    finally:
        servers.close()
    for result in results:
        print(f"{result.channel:<9} {result.messages:>6} messages  wall {result.wall_s:6.2f} s "
              f"({result.per_s:6.0f}/s)  gateway CPU {result.gateway_cpu_s:6.2f} s "
              f"({result.per_cpu_s:6.0f} per CPU-second)")


if __name__ == "__main__":
    main()

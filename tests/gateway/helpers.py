"""Building test settings that point at this test's own real servers, and starting a real
`voicegw serve` child on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from gateway.config import Settings, env_name, load_settings

ADMIN_TOKEN = "test-admin-token-0123456789"
TWILIO_AUTH_TOKEN = "test-twilio-auth-token"


def make_settings(
    redis_url: str, database_url: str, key_prefix: str, **overrides: Any
) -> Settings:
    env = {
        "VOICEGW_REDIS_URL": redis_url,
        "VOICEGW_DATABASE_URL": database_url,
        "VOICEGW_PUBLIC_URL": "https://gw.test",
        "VOICEGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "VOICEGW_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "VOICEGW_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "VOICEGW_REDIS_PREFIX": key_prefix,
        "VOICEGW_MIGRATE_ON_START": "false",
        "VOICEGW_SHUTDOWN_GRACE_S": "1",
        # A test's process runs the callers and emulators beside the gateway on a shared
        # machine: admission by live load (tested in voice/test_admission.py) must not
        # refuse the calls other tests place.
        "VOICEGW_CALL_CPU_LIMIT": "8",
        "VOICEGW_CALL_LAG_LIMIT_MS": "2000",
        # A number's fee is charged when it is assigned (the admin API); the hourly pass,
        # whose first run a loaded machine delays past a test's top-up, would charge a fee
        # the assignment could not (no credit yet) in the middle of a test's exact balance.
        "VOICEGW_RUN_NUMBER_FEES": "false",
    }
    env.update({f"VOICEGW_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)


def serve_env(settings: Settings, port: int) -> dict[str, str]:
    """The environment of a `voicegw serve` child with these settings on this port: every
    setting spelled out (nothing inherited from the test's own VOICEGW_* variables), the
    rest of the environment kept (PYTHONPATH: the child imports this checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    for item in fields(settings):
        env[env_name(item.name)] = str(getattr(settings, item.name))
    env.update({env_name("port"): str(port), env_name("host"): "127.0.0.1",
                env_name("log_level"): "WARNING"})
    return env


async def start_serve(settings: Settings, port: int, output: int | IO[bytes] | None = None,
                      log: Path | None = None) -> asyncio.subprocess.Process:
    """`python -m gateway.cli serve` as a child, answering 200 on /readyz when this returns
    (otherwise it is killed and the test fails, with the tail of `log`, the file `output`
    writes to, when given)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", env=serve_env(settings, port),
        stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return process
            await asyncio.sleep(0.1)
    process.kill()
    await process.wait()
    tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:] if log else ""
    pytest.fail(f"the child gateway did not start: {tail}")

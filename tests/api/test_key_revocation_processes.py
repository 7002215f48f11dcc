"""A revoked API key stops working in every gateway process within a second: two real
`voicegw serve` children share PostgreSQL and Redis; one caches the key, the other
revokes it, and the first refuses it within a second (it heard the change over Redis
pub/sub; its cache alone would have kept the key for 30 s)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api.keycache import CACHE_TTL_S
from gateway.embedded import free_port
from tests.api.conftest import ADMIN
from tests.gateway.helpers import make_settings, start_serve

WITHIN_S = 1.0


@pytest.fixture
async def two_gateways(redis_url: str, database_url: str, key_prefix: str,
                       tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false")
    processes = []
    bases = []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                processes.append(await start_serve(settings, port, out, log))
            bases.append(f"http://127.0.0.1:{port}")
        yield bases[0], bases[1]
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 30)
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_key_revoked_in_one_process_is_refused_by_the_other_within_a_second(
        two_gateways: tuple[str, str]) -> None:
    a, b = two_gateways
    assert CACHE_TTL_S > 10 * WITHIN_S  # the cache alone could not pass this test
    async with aiohttp.ClientSession() as http:
        created = await (await http.post(f"{a}/admin/tenants", json={"name": "Acme"},
                                         headers=ADMIN)).json()
        first = {"Authorization": f"Bearer {created['api_key']}"}
        made = await http.post(f"{a}/v1/api-keys", headers=first,
                               json={"name": "leaked", "scope": "read"})
        leaked = await made.json()
        key = {"Authorization": f"Bearer {leaked['key']}"}
        for _ in range(3):  # b now holds the key in its cache
            async with http.get(f"{b}/v1/usage", headers=key) as response:
                assert response.status == 200

        async with http.delete(f"{a}/v1/api-keys/{leaked['id']}", headers=first) as revoked:
            assert revoked.status == 204
        started = time.monotonic()
        while True:
            async with http.get(f"{b}/v1/usage", headers=key) as response:
                if response.status == 401:
                    break
                assert response.status == 200
            elapsed = time.monotonic() - started
            assert elapsed < WITHIN_S, f"b still took the revoked key after {elapsed:.2f} s"
            await asyncio.sleep(0.01)
        async with http.get(f"{b}/v1/usage", headers=first) as response:
            assert response.status == 200  # the other keys are untouched

"""`voicegw dev` end to end: embedded servers, demo tenant, data kept between runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from metering.ratecard import MICRO, default_rate_card
from metering.rating import prorate_number_fee

STARTUP_LIMIT_S = 120


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    env["VOICEGW_PORT"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "dev", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    banner: dict[str, str] = {}
    deadline = time.monotonic() + STARTUP_LIMIT_S
    assert process.stdout is not None
    while time.monotonic() < deadline and "demo API key" not in banner:
        line = process.stdout.readline()
        if not line:
            break
        name, _, value = line.strip().partition("  ")
        if value:
            banner[name.strip()] = value.strip()
    assert "demo API key" in banner, f"voicegw dev did not start: {banner}"
    return process, banner


def _get(url: str, key: str | None = None, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    data = json.dumps(body).encode() if body else None
    # The loopback gateway this test started: http only, never a file: URL.
    request = urllib.request.Request(url, data=data, headers={**(headers or {}), **auth})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url}: {exc.code} {exc.read()!r}") from exc


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(60)


def test_dev_runs_and_keeps_its_data(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data = tmp_path / "voicegw-data"
    process, banner = _start(data)
    try:
        base, key = banner["gateway"], banner["demo API key"]
        assert _get(f"{base}/readyz")[0] == 200
        status, balance = _get(f"{base}/v1/balance", key)
        today = dt.datetime.now(dt.UTC).date()
        month_end = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        fee = prorate_number_fee(default_rate_card(), "number_local_months", today, month_end)
        assert balance["available_micro_credits"] == 10_000 * MICRO - fee
        status, _ = _get(f"{base}/v1/topups", key, {"credits": 5},
                         {"Idempotency-Key": "between-runs", "Content-Type": "application/json"})
        assert status == 201
    finally:
        assert _stop(process) == 0

    again, second = _start(data)
    try:
        assert second["demo API key"] == key
        assert second["demo tenant"] == banner["demo tenant"]
        assert second["admin token"] == banner["admin token"]
        _, balance = _get(f"{second['gateway']}/v1/balance", key)
        assert balance["available_micro_credits"] == 10_005 * MICRO - fee
    finally:
        assert _stop(again) == 0
    assert (data / "dev.json").stat().st_mode & 0o077 == 0

"""`voicegw dev` end to end: embedded servers, the emulators as a child process, a demo
tenant with credits, dev.json and the banner naming every URL, the banner's commands
placing a call and sending messages, data kept between runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from gateway.config import ConfigError
from gateway.devmode import dev_ports
from gateway.embedded import port_answers
from metering.ratecard import MICRO, default_rate_card
from metering.rating import prorate_number_fee

STARTUP_LIMIT_S = 120


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Starts `voicegw dev`; returns it and its banner (name -> value; `$ tool` -> the
    banner's command line for that tool)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    env["VOICEGW_PORT"] = "0"
    # `make test` runs with PYTHONASYNCIODEBUG=1, which the child inherits: asyncio's debug
    # mode makes every loop run late, so admission by live load (tested on its own in
    # voice/test_admission.py) would refuse the demo calls a real laptop takes.
    env["VOICEGW_CALL_LAG_LIMIT_MS"] = "2000"
    env["VOICEGW_CALL_CPU_LIMIT"] = "8"
    errors = data_dir.parent / "dev-stderr.log"
    with open(errors, "a") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "dev", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )
    banner: dict[str, str] = {}
    deadline = time.monotonic() + STARTUP_LIMIT_S
    assert process.stdout is not None
    while time.monotonic() < deadline and "$ load.message_cli sms" not in banner:
        line = process.stdout.readline()
        if not line:
            break
        if " -m load." in line:
            words = shlex.split(line)
            banner[f"$ {' '.join(words[2:3 + (words[2] == 'load.message_cli')])}"] = line
            continue
        name, _, value = line.strip().partition("  ")
        if value:
            banner[name.strip()] = value.strip()
    assert "$ load.message_cli sms" in banner, \
        f"voicegw dev did not start: {banner} {errors.read_text()[-2000:]}"
    return process, banner


def _run_tool(command: str, cwd: Path, **env: str) -> str:
    done = subprocess.run(shlex.split(command), cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout + done.stderr
    return done.stdout


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    ps = shutil.which("ps")
    assert ps is not None
    listing = subprocess.run([ps, "-A", "-o", "pid=,ppid=,args="], capture_output=True,
                             text=True, check=True).stdout
    children = {}
    for row in listing.splitlines():
        child, parent, args = row.split(None, 2)
        if int(parent) == pid:
            children[int(child)] = args
    return children


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


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


def _sign_in(base: str, email: str, password: str) -> tuple[int, dict[str, Any], str]:
    """POST /auth/login; the answer, its body and the session cookie's header."""
    request = urllib.request.Request(  # noqa: S310 - the loopback gateway of this test
        f"{base}/auth/login", data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read()), \
                response.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), ""


def _check_demo_sign_ins(base: str, banner: dict[str, str]) -> None:
    """The banner's owner and operator sign in with its password; a wrong one does not."""
    password = banner["demo password"]
    for email, role in ((banner["demo owner"], "owner"), (banner["demo operator"], "operator")):
        status, body, cookie = _sign_in(base, email, password)
        assert status == 200 and body["user"]["role"] == role, body
        assert cookie.startswith("vgw_session=") and "HttpOnly" in cookie
        assert "Secure" not in cookie  # http on a laptop: the dev gateway sets no Secure
    status, body, _ = _sign_in(base, banner["demo owner"], password + "x")
    assert status == 401, body


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(60)


def _settled_balance(base: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        _, balance = _get(f"{base}/v1/balance", key)
        if balance["reserved_micro_credits"] == 0 or time.monotonic() > deadline:
            return balance
        time.sleep(0.2)


def _check_dev_json(data: Path, banner: dict[str, str]) -> dict[str, Any]:
    running: dict[str, Any] = json.loads((data / "dev.json").read_text())["running"]
    assert running["gateway_url"] == banner["gateway"]
    assert running["twilio_auth_token"] == banner["twilio token"]
    assert running["twilio_account_sid"] == banner["twilio SID"].strip()
    assert running["demo_number"] == banner["demo number"] == "+15550100001"
    assert set(running["emulators"]) == {"openai", "elevenlabs", "twilio", "graph"}
    for url in (running["redis_url"], running["database_url"], running["emulators_url"],
                *running["emulators"].values()):
        assert port_answers("127.0.0.1", int(urlsplit(url).port or 0)), url
    return running


def _place_demo_calls(banner: dict[str, str], data: Path, cwd: Path) -> list[str]:
    """The banner's call command and a caller with no flags (finding dev.json), at once."""
    env = {**os.environ, "VOICEGW_DEV_DIR": str(data)}
    runs = [subprocess.Popen(shlex.split(banner["$ load.caller_cli"]), cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            subprocess.Popen([sys.executable, "-m", "load.caller_cli"], cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [run.communicate(timeout=90)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and "failed" not in output, output
        assert "record: " in output and "outcome: appointment_booked" in output, output
    assert "using voicegw dev from" in outputs[1]
    return [output.split()[output.split().index("call") + 1] for output in outputs]


def _check_dev_mail(running: dict[str, Any]) -> None:
    """A queued mail goes over SMTP to the dev catcher and shows at /dev/mail."""
    async def queue() -> None:
        conn = await asyncpg.connect(running["database_url"])
        try:
            await conn.execute(
                "INSERT INTO mail_outbox (dedupe_key, recipient, subject, body) "
                "VALUES ('dev-test', 'ops@example.com', 'Hello from dev', 'body')")
        finally:
            await conn.close()

    asyncio.run(queue())
    deadline = time.monotonic() + 15
    while True:
        _, caught = _get(running["mail_url"] + "?format=json")
        if caught["mails"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(m["subject"], m["to"]) for m in caught["mails"]] == [
        ("Hello from dev", ["ops@example.com"])]


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
        assert balance["available_micro_credits"] == 100_000 * MICRO - fee
        assert balance["paused"] is False and balance["paused_channels"] == []
        running = _check_dev_json(data, banner)
        _check_dev_mail(running)
        (emulator_pid,) = [pid for pid, args in _children(process.pid).items()
                           if "load.emulators" in args]
        for call_sid in _place_demo_calls(banner, data, tmp_path):
            _, record = _get(f"{base}/v1/calls/{call_sid}", key)
            assert record["turns"] >= 1 and record["disposition"] == "caller_hung_up"
            assert [o["kind"] for o in record["outcomes"]] == ["appointment_booked"]
        for channel in ("whatsapp", "sms"):
            assert "reply " in _run_tool(banner[f"$ load.message_cli {channel}"], tmp_path)
        _check_demo_sign_ins(base, banner)
        balance = _settled_balance(base, key)
        status, topped = _get(f"{base}/v1/topups", key, {"credits": 5},
                              {"Idempotency-Key": "between-runs",
                               "Content-Type": "application/json"})
        assert status == 201
        assert topped["balance"]["available_micro_credits"] == \
            balance["available_micro_credits"] + 5 * MICRO
    finally:
        assert _stop(process) == 0
    assert _gone(emulator_pid)
    assert not port_answers("127.0.0.1", int(urlsplit(running["emulators_url"]).port or 0))
    assert "running" not in json.loads((data / "dev.json").read_text())
    output = (tmp_path / "dev-stderr.log").read_text()
    assert "Running commandline" not in output and "initdb" not in output
    for server in ("Redis (Valkey)", "PostgreSQL"):
        assert output.count(f"embedded {server} listening") == 1
    assert "initdb" in (data / "postgres" / "postgres-setup.log").read_text()

    again, second = _start(data)
    try:
        assert second["demo API key"] == key
        assert second["demo tenant"] == banner["demo tenant"]
        assert second["admin token"] == banner["admin token"]
        assert second["demo password"] == banner["demo password"]
        _check_demo_sign_ins(second["gateway"], second)  # the same people, not doubled
        _, balance = _get(f"{second['gateway']}/v1/balance", key)
        assert balance["available_micro_credits"] == \
            topped["balance"]["available_micro_credits"]  # granted once, not again
    finally:
        assert _stop(again) == 0
    assert (data / "dev.json").stat().st_mode & 0o077 == 0


def test_dev_ports_are_checked_by_name() -> None:
    assert dev_ports({}) == {"redis": 0, "postgres": 0}
    assert dev_ports({"VOICEGW_DEV_REDIS_PORT": "6390", "VOICEGW_DEV_POSTGRES_PORT": "5490"}
                     ) == {"redis": 6390, "postgres": 5490}
    with pytest.raises(ConfigError) as bad:
        dev_ports({"VOICEGW_DEV_REDIS_PORT": "redis", "VOICEGW_DEV_POSTGRES_PORT": "70000"})
    assert [p.split(":")[0] for p in bad.value.problems] == [
        "VOICEGW_DEV_REDIS_PORT", "VOICEGW_DEV_POSTGRES_PORT"]

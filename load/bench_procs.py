"""The processes of the call benchmark: the gateway and the vendor emulators as child
processes pinned to their cores, a scratch PostgreSQL database and Redis key prefix, and
CPU / memory readings from /proc (Linux only; no psutil).

Nothing here imports the gateway: it is started as `python -m gateway.cli serve`, the
way an operator starts it, and talked to over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import asyncpg
import redis.asyncio as aioredis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process, all its threads, in seconds (with
    `children`, also that of its children that ended and were waited for)."""
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


STORE_COMMANDS = ("redis-server", "valkey-server", "postgres")


def stores_cpu_seconds() -> float:
    """CPU seconds of the Redis and PostgreSQL processes on this host (PostgreSQL's
    backends that ended count through the postmaster's children's time): they serve the
    gateway under test, but other users of the same servers show up here too."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (entry / "comm").read_text().strip() in STORE_COMMANDS:
                total += cpu_seconds(int(entry.name), children=True)
    return total


def machine_busy_seconds() -> float:
    """Seconds all cores together spent busy since boot in processes (user, nice, system)
    or stolen by the hypervisor. Interrupt and softirq time is left out: it is the
    kernel moving the run's own loopback packets (it grew with the refused-call flood of
    the levels above capacity), not another process."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
        int(v) for v in first.split()[1:9])
    return (user + nice + system + steal) / CLOCK_TICKS


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def rss_bytes(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) * 1024 if match else 0


def core_busy_seconds(core: int) -> float:
    """Seconds core `core` spent busy (not idle or iowait) since boot, all processes."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(v) for v in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS
    raise ValueError(f"no cpu{core} in /proc/stat")


@dataclass
class Reading:
    at: float
    gateway_cpu_s: float
    gateway_rss: int
    emulators_cpu_s: float
    self_cpu_s: float
    gateway_core_busy_s: float
    machine_busy_s: float = 0.0  # all cores, every process
    stores_cpu_s: float = 0.0  # Redis and PostgreSQL
    call_s: float = 0.0  # call-seconds the callers held so far (live calls integrated)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def start_child(name: str, argv: list[str], env: dict[str, str], cores: set[int],
                log_dir: Path) -> Child:
    """A child process pinned to `cores` before it runs a line of Python: every thread it
    starts (onnxruntime's, asyncio.to_thread's) inherits the mask."""
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - closed by Child.stop; a restart appends
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: os.sched_setaffinity(0, cores))
    return Child(name, process, log_path, log)


def emulator_flags() -> set[str]:
    """The flags `python -m load.emulators` accepts (it grows latency knobs over time)."""
    done = subprocess.run([sys.executable, "-m", "load.emulators", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    return set(re.findall(r"--[a-z][a-z0-9-]+", done.stdout))


async def wait_http(url: str, child: Child, timeout_s: float = 90.0,
                    ok_below: int = 500) -> None:
    end = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < end:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n"
                                   f"{child.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status < ok_below:
                        return
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout_s:.0f} s:\n"
                       f"{child.log_tail()}")


@dataclass
class Scratch:
    """A database and a Redis key prefix of our own, dropped at the end."""

    server_url: str
    database: str
    redis_url: str
    redis_prefix: str

    @property
    def database_url(self) -> str:
        return self.server_url.rsplit("/", 1)[0] + "/" + self.database

    @classmethod
    async def create(cls, server_url: str, redis_url: str) -> Scratch:
        tag = uuid.uuid4().hex[:8]
        name = f"vgw_bench_calls_{tag}"
        conn = await asyncpg.connect(server_url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        client = aioredis.from_url(redis_url)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return cls(server_url, name, redis_url, f"vgwbench{tag}:")

    async def drop(self) -> None:
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.server_url, timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()
        client = aioredis.from_url(self.redis_url)
        try:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=self.redis_prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await client.delete(*batch)
                    batch.clear()
            if batch:
                await client.delete(*batch)
        finally:
            await client.aclose()


class Sampler:
    """Readings of the gateway, the emulators and this process every `period_s`."""

    def __init__(self, gateway_pid: int, emulators_pid: int, gateway_core: int,
                 period_s: float = 0.5) -> None:
        self.gateway_pid, self.emulators_pid = gateway_pid, emulators_pid
        self.gateway_core = gateway_core
        self.period_s = period_s
        self.readings: list[Reading] = []
        self._task: asyncio.Task[None] | None = None
        self.call_seconds: Callable[[], float] = lambda: 0.0  # set by the level's callers

    def read(self) -> Reading:
        reading = Reading(time.monotonic(), cpu_seconds(self.gateway_pid),
                          rss_bytes(self.gateway_pid), cpu_seconds(self.emulators_pid),
                          time.process_time(), core_busy_seconds(self.gateway_core),
                          machine_busy_seconds(), stores_cpu_seconds(), self.call_seconds())
        self.readings.append(reading)
        return reading

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.read()
            await asyncio.sleep(self.period_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="bench-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[Reading]:
        return [r for r in self.readings if start <= r.at <= end]

"""`python -m benchmarks` (`make bench`): run the benchmarks, print and record the figures."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import uuid
from pathlib import Path

import asyncpg

from benchmarks import credit_control, messaging, sink
from benchmarks.common import cpu_model
from gateway.embedded import LocalServers
from metering.migrate import migrate_url

COMMAND = "make bench"


async def _scratch_database(server_url: str) -> tuple[str, str]:
    name = f"vgw_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = server_url.rsplit("/", 1)[0] + "/" + name
    await migrate_url(url)
    return name, url


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _main(args: argparse.Namespace) -> str:
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        name, database_url = await _scratch_database(servers.postgres_url)
        try:
            control = await credit_control.run(servers.redis_url, sessions=args.sessions)
            ledger = await sink.run(servers.redis_url, database_url, sessions=args.sessions)
            chats = await messaging.run(servers.redis_url, servers.postgres_url)
        finally:
            await _drop_database(servers.postgres_url, name)
    finally:
        servers.close()
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{COMMAND}` (`python -m benchmarks --sessions {args.sessions}`). "
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Redis and PostgreSQL on the same host (loopback).",
        "",
        "| benchmark | figure | target |",
        "| --- | --- | --- |",
        f"| credit control, ops per gateway CPU-second (batched {control.operations:,} ops: "
        f"INITIAL, 4 x UPDATE, TERMINATE) | {control.ops_per_cpu_s:,.0f} | >= 20,000 |",
        f"| credit control, ops per wall second (Redis is the bound) | "
        f"{control.ops_per_s:,.0f} | |",
        f"| ledger sink, rows per second into PostgreSQL ({ledger.events:,} events, "
        f"{ledger.rows:,} rows) | {ledger.rows_per_s:,.0f} | >= 50,000 |",
        *messaging.rows(chats),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--output", default="BENCHMARKS.md")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    print(report)
    Path(args.output).write_text(report + _kept_sections(Path(args.output)))


def _kept_sections(path: Path) -> str:
    """The sections other benchmarks own (`## Messaging ...`, `## Phone calls`, written by
    their own commands), kept as they are below the figures written here."""
    if not path.exists():
        return ""
    text = path.read_text()
    start = text.find("\n## ")
    return "" if start < 0 else text[start:]


if __name__ == "__main__":
    main()

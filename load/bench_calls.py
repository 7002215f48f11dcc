"""`python -m load.bench_calls` (`make bench-calls`): how many phone calls one gateway
process holds on one core, and what latency it adds to each turn.

The gateway runs as its own process (`python -m gateway.cli serve`) pinned to one core;
the vendor emulators (`python -m load.emulators`, fixed latencies) and this process, the
simulated Twilio callers, are pinned to the other cores, so what is measured is the
gateway's core. Redis and PostgreSQL are the local servers (a scratch database and key
prefix, both dropped at the end). Each level holds N calls for a while (see
`load.bench_load`) on a fresh, warmed-up gateway process, so no level inherits the memory
or the backlog of the one before; a sweep runs the levels in order within a time budget,
`--runs` times (three by default: the report gives each figure's median), and after each
run's voicegw levels the `--pipecat` levels on a stock pipecat Twilio bot
(`load.pipecat_stock`) under the same callers, script, emulators and pinning.

What makes a figure trustworthy is checked, not assumed: CPU per call-second is the
server's CPU over a window of at least 30 s divided by the call-seconds held in it; the
machine's load average and what other processes used are read before each level, and
what every process but the server, the callers and the emulators used during it (from
/proc/stat; Redis and PostgreSQL shown apart): over 0.1 core, BENCHMARKS.md is not
written and the reason is printed (exit status 3). Silero's stop delay is measured on
tone-coded and espeak-ng speech first (`load.vad_delay`).

Added latency of a turn = what the caller measured (end of its utterance to the agent's
first audio) minus what the configuration alone makes it wait: the VAD's stop_secs,
then the longer of the speech timeout and the STT emulator's latency (pipecat runs the
two at once), then the LLM emulator's time to finish the reply's first sentence (TTS
starts per sentence), then the TTS emulator's time to first audio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from load import bench_report, vad_delay
from load.bench_load import (
    CLOSE_GRACE_S,
    MAX_CALL_S,
    LevelRun,
    run_level,
    script_for,
    wait_idle,
    warm_up_script,
)
from load.bench_procs import (
    Child,
    Reading,
    Sampler,
    Scratch,
    emulator_flags,
    free_port,
    load_average,
    start_child,
    wait_http,
)
from load.bench_report import Timing
from load.caller import Endpoint

COMMAND = "make bench-calls"
NUMBER = "+15550107001"
ACCOUNT_SID = "AC" + "b" * 32


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.bench_calls",
                                     description=__doc__.split("\n\n")[0])
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--calls", type=int, help="one level of N concurrent calls")
    level.add_argument("--sweep", default="10,20,50,100",
                       help="levels to run in this order, comma separated (default "
                            "%(default)s: the last above one core's capacity, to show "
                            "admission refusing calls and the admitted ones intact)")
    parser.add_argument("--runs", type=int, default=3,
                        help="run the sweep this many times; figures are the medians "
                             f"(BENCHMARKS.md takes {bench_report.RUNS_RECORDED})")
    parser.add_argument("--pipecat", default="10",
                        help="levels also run on a stock pipecat pipeline (load.pipecat_stock) "
                             "in each run, comma separated (default %(default)s: it fills a "
                             "core at about 12 calls, and a full core caps CPU per "
                             "call-second; empty: none)")
    parser.add_argument("--ramp-s", type=float, default=10.0,
                        help="the N calls start spread over this many seconds")
    parser.add_argument("--duration-s", type=float, default=32.0,
                        help="callers whose call ended redial until this long after the "
                             "ramp; CPU is measured over this window (BENCHMARKS.md takes "
                             f"at least {bench_report.MIN_WINDOW_S:g} s)")

    parser.add_argument("--turns", type=int, default=3, choices=(1, 2, 3),
                        help="utterances per call")
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a server where a scratch database may be created")
    parser.add_argument("--llm-ttfb-ms", type=float, default=250.0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0,
                        help="LLM emulator pace (one word per token)")
    parser.add_argument("--stt-latency-ms", type=float, default=200.0,
                        help="used when the emulator takes it; else its default is reported")
    parser.add_argument("--tts-ttfb-ms", type=float, default=75.0,
                        help="used when the emulator takes it; else 0 is reported")
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero",
                        help="the tenant's turn detection (agent config)")
    parser.add_argument("--vad-stop-s", type=float, default=0.2,
                        help="the gateway's VAD stop_secs (agents/voice/vad.py)")
    parser.add_argument("--user-speech-timeout-s", type=float, default=0.4,
                        help="the gateway's speech timeout (agents/voice/call.py)")
    parser.add_argument("--target-ms", type=float, default=50.0,
                        help="p99 added latency a level must stay within")
    parser.add_argument("--silence-ms", type=float, default=50.0,
                        help="silence heard inside replies a level must stay within, ms per "
                             "minute of agent speech")
    parser.add_argument("--vad-phrases", type=int, default=6,
                        help="phrases synthesized with espeak-ng for Silero's stop delay "
                             "on real speech (0: skip)")
    parser.add_argument("--budget-s", type=float, default=3600.0,
                        help="skip levels that would end the run later than this")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the gateway (e.g. LOGURU_LEVEL=INFO)")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--logs", help="keep the children's logs in this directory")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the gateway under cProfile, stats to FILE (slows it down: "
                             "its figures are then not comparable)")
    return parser.parse_args(argv)


def _levels(args: argparse.Namespace) -> list[int]:
    if args.calls:
        return [args.calls]
    return [int(n) for n in args.sweep.split(",") if n.strip()]  # repeats show leaks


def _other_cores(gateway_core: int) -> set[int]:
    cores = os.sched_getaffinity(0)
    if gateway_core not in cores or len(cores) < 2:
        raise SystemExit(f"need core {gateway_core} and at least one other; have {sorted(cores)}")
    return cores - {gateway_core}


def _emulator_argv(args: argparse.Namespace, port: int, auth_token: str,
                   flags: set[str]) -> tuple[list[str], Timing]:
    argv = [sys.executable, "-m", "load.emulators", "--port", str(port),
            "--ttfb-ms", str(args.llm_ttfb_ms), "--tokens-per-s", str(args.tokens_per_s),
            "--tts-pacing", "1.0", "--twilio-account-sid", ACCOUNT_SID,
            "--twilio-auth-token", auth_token]
    stt_ms, tts_ms = bench_report.emulator_default_stt_ms(), 0.0
    if "--stt-latency-ms" in flags:
        argv += ["--stt-latency-ms", str(args.stt_latency_ms)]
        stt_ms = args.stt_latency_ms
    if "--tts-ttfb-ms" in flags:
        argv += ["--tts-ttfb-ms", str(args.tts_ttfb_ms)]
        tts_ms = args.tts_ttfb_ms
    timing = Timing(stt_ms, args.llm_ttfb_ms, args.tokens_per_s, tts_ms, args.vad_stop_s,
                    args.user_speech_timeout_s)
    return argv, timing


def _gateway_env(args: argparse.Namespace, scratch: Scratch, port: int, emulators: str,
                 admin_token: str, auth_token: str, max_calls: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    env.update({
        "VOICEGW_REDIS_URL": scratch.redis_url, "VOICEGW_DATABASE_URL": scratch.database_url,
        "VOICEGW_REDIS_PREFIX": scratch.redis_prefix,
        "VOICEGW_PUBLIC_URL": "https://bench.invalid", "VOICEGW_ADMIN_TOKEN": admin_token,
        "VOICEGW_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOICEGW_TWILIO_AUTH_TOKEN": auth_token,
        "VOICEGW_TWILIO_API_BASE": emulators,
        "VOICEGW_OPENAI_API_KEY": "emulator-openai-key",
        "VOICEGW_OPENAI_BASE_URL": emulators + "/v1",
        "VOICEGW_ELEVENLABS_API_KEY": "emulator-elevenlabs-key",
        "VOICEGW_ELEVENLABS_BASE_URL": emulators,
        "VOICEGW_GRAPH_API_BASE": emulators + "/v21.0",
        "VOICEGW_HOST": "127.0.0.1", "VOICEGW_PORT": str(port),
        "VOICEGW_MAX_CALLS": str(max_calls), "VOICEGW_SHUTDOWN_GRACE_S": "5",
    })
    for item in args.gateway_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


async def _migrated(env: dict[str, str]) -> None:
    """`voicegw migrate`, so the schema is complete before the first request: the gateway
    migrates in the background and /readyz does not wait for it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "migrate", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"voicegw migrate failed:\n{output.decode(errors='replace')}")


async def _tenant(gateway: str, admin_token: str, vad: str) -> str:
    """A tenant with the benchmark's number and plenty of credit; returns its API key."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with aiohttp.ClientSession(base_url=gateway) as http:
        async with http.post("/admin/tenants", json={"name": "Call benchmark"},
                             headers=admin) as response:
            created = await response.json()
            if response.status != 201:
                raise RuntimeError(f"POST /admin/tenants: {response.status} {created}")
        tenant_id, api_key = created["id"], created["api_key"]
        async with http.post(f"/admin/tenants/{tenant_id}/numbers", headers=admin,
                             json={"phone_number": NUMBER, "kind": "local"}) as response:
            if response.status != 201:
                raise RuntimeError(f"adding the number: {response.status} "
                                   f"{await response.text()}")
        async with http.put(f"/admin/tenants/{tenant_id}/agent", headers=admin,
                            json={"turn_detection": vad}) as response:
            if response.status != 200:
                raise RuntimeError(f"agent config: {response.status} {await response.text()}")
        headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "bench-calls"}
        async with http.post("/v1/topups", json={"credits": 100_000_000,
                                                 "reference": "call benchmark"},
                             headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"top-up: {response.status} {await response.text()}")
    return str(api_key)


@dataclass
class Harness:
    """What stays up across levels: the emulators, the scratch database, the tenant."""

    args: argparse.Namespace
    log_dir: Path
    emulators: Child
    endpoint: Endpoint
    env: dict[str, str]
    api_key: str = ""
    warm_ups: list[LevelRun] = field(default_factory=list)


async def _start_gateway(h: Harness, first: bool) -> tuple[Child, Sampler]:
    """A fresh gateway process, warm (two short calls) and quiet, with its idle figures:
    every level starts from the same state, not from what the last one left behind."""
    profile = ["-m", "cProfile", "-o", h.args.profile] if h.args.profile else []
    gateway = start_child("gateway", [sys.executable, *profile, "-m", "gateway.cli", "serve"],
                          h.env, {h.args.gateway_core}, h.log_dir)
    try:
        await wait_http(h.endpoint.gateway_url + "/readyz", gateway, ok_below=300)
        if first:
            await _migrated(h.env)
            h.api_key = await _tenant(h.endpoint.gateway_url, h.env["VOICEGW_ADMIN_TOKEN"],
                                      h.args.vad)
        sampler = Sampler(gateway.pid, h.emulators.pid, h.args.gateway_core)
        sampler.start()
        for _ in range(10):  # a gateway just started may still refuse (its loop is late)
            warm = await run_level(h.endpoint, NUMBER, 2, 0.5, 0.0, warm_up_script, sampler)
            h.warm_ups.append(warm)
            if not any(outcome.refused for outcome in warm.outcomes):
                break
            await asyncio.sleep(2.0)
        for outcome in warm.outcomes:
            if not outcome.held:
                print(f"  warm-up call not held: {outcome.error} {outcome.result}", flush=True)
        async with aiohttp.ClientSession() as http:
            await wait_idle(http, h.endpoint.gateway_url, 20)
    except BaseException:
        gateway.stop()
        raise
    return gateway, sampler


async def _machine_before(sampler: Sampler, quiet: Reading, idle: Reading) -> tuple[
        tuple[float, float, float], float]:
    """The load average, and the cores every process but the idle server, this one and
    the emulators used over the idle readings just taken."""
    seconds = idle.at - quiet.at
    others = ((idle.machine_busy_s - quiet.machine_busy_s)
              - (idle.gateway_cpu_s - quiet.gateway_cpu_s)
              - (idle.emulators_cpu_s - quiet.emulators_cpu_s)
              - (idle.self_cpu_s - quiet.self_cpu_s)) / seconds
    return load_average(), others


async def _level(h: Harness, calls: int, run_no: int, runs: list[LevelRun],
                 timing: Timing) -> None:
    args = h.args
    gateway, sampler = await _start_gateway(h, first=not runs)
    try:
        await asyncio.sleep(1.0)
        quiet = sampler.read()
        await asyncio.sleep(4.0)
        idle = sampler.read()
        load, others = await _machine_before(sampler, quiet, idle)
        print(f"level: {calls} calls (run {run_no}); machine before it: load average "
              f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, other processes "
              f"{others:.2f} cores", flush=True)
        run = await run_level(h.endpoint, NUMBER, calls, args.ramp_s, args.duration_s,
                              lambda index: script_for(index, args.turns), sampler)
        run.idle_rss = idle.gateway_rss
        run.idle_cores = (idle.gateway_cpu_s - quiet.gateway_cpu_s) / (idle.at - quiet.at)
        run.run, run.load_before, run.others_before = run_no, load, others
        runs.append(run)
        print(bench_report.level_line(run, timing, gateway.log_path, gateway.log_tail(8),
                                      args.target_ms, args.silence_ms), flush=True)
        async with aiohttp.ClientSession() as http:
            if not await wait_idle(http, h.endpoint.gateway_url, 20):
                print("  the gateway still reports live calls 20 s after the level "
                      "(stopping it settles them)", flush=True)
    finally:
        await sampler.stop()
        gateway.stop()


async def _stock_level(h: Harness, calls: int, run_no: int, runs: list[LevelRun],
                       timing: Timing) -> None:
    """The same level against stock pipecat (load.pipecat_stock), pinned the same way."""
    args = h.args
    port = free_port()
    server = start_child("pipecat", [
        sys.executable, "-m", "load.pipecat_stock", "--port", str(port),
        "--vendors", h.endpoint.stt_emulator_url or "", "--vad-stop-s", str(args.vad_stop_s),
        "--user-speech-timeout-s", str(args.user_speech_timeout_s)],
        dict(os.environ), {args.gateway_core}, h.log_dir)
    endpoint = replace(h.endpoint, gateway_url=f"http://127.0.0.1:{port}")
    sampler = Sampler(server.pid, h.emulators.pid, args.gateway_core)
    try:
        await wait_http(endpoint.gateway_url + "/readyz", server, ok_below=300)
        sampler.start()
        await run_level(endpoint, NUMBER, 2, 0.5, 0.0, warm_up_script, sampler)
        async with aiohttp.ClientSession() as http:
            await wait_idle(http, endpoint.gateway_url, 20)
        await asyncio.sleep(1.0)
        quiet = sampler.read()
        await asyncio.sleep(4.0)
        idle = sampler.read()
        load, others = await _machine_before(sampler, quiet, idle)
        print(f"level: {calls} calls on stock pipecat (run {run_no}); machine before it: "
              f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, other "
              f"processes {others:.2f} cores", flush=True)
        run = await run_level(endpoint, NUMBER, calls, args.ramp_s, args.duration_s,
                              lambda index: script_for(index, args.turns), sampler)
        run.idle_rss = idle.gateway_rss
        run.idle_cores = (idle.gateway_cpu_s - quiet.gateway_cpu_s) / (idle.at - quiet.at)
        run.run, run.load_before, run.others_before = run_no, load, others
        run.server = "pipecat"
        runs.append(run)
        print(bench_report.level_line(run, timing, server.log_path, server.log_tail(8),
                                      args.target_ms, args.silence_ms), flush=True)
    finally:
        await sampler.stop()
        server.stop()


async def _run(args: argparse.Namespace, log_dir: Path) -> bench_report.Report:
    began = time.monotonic()
    levels = _levels(args)
    load_cores = _other_cores(args.gateway_core)
    os.sched_setaffinity(0, load_cores)  # this process and every thread it starts
    vad_lines = ""
    if args.vad_phrases:
        print("Silero's stop delay (tone-coded and espeak-ng speech)...", flush=True)
        vad_lines = vad_delay.report(args.vad_phrases, args.vad_stop_s)
        print(vad_lines, flush=True)
    scratch = await Scratch.create(args.postgres_url, args.redis_url)
    admin_token, auth_token = "bench_" + secrets.token_urlsafe(24), secrets.token_hex(16)
    emulator_port, gateway_port = free_port(), free_port()
    emulator_argv, timing = _emulator_argv(args, emulator_port, auth_token, emulator_flags())
    emulators = start_child("emulators", emulator_argv, dict(os.environ), load_cores, log_dir)
    try:
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        await wait_http(emulator_url + "/_emulator/stt/transcriptions", emulators)
        env = _gateway_env(args, scratch, gateway_port, emulator_url, admin_token, auth_token,
                           max(levels) * 2 + 10)
        endpoint = Endpoint(f"http://127.0.0.1:{gateway_port}", "https://bench.invalid",
                            auth_token, ACCOUNT_SID, emulator_url)
        harness = Harness(args, log_dir, emulators, endpoint, env)
        runs: list[LevelRun] = []
        skipped: list[int] = []
        calls_take_s = 45.0  # a call's length, then what the last level showed
        stock = [int(n) for n in args.pipecat.split(",") if n.strip()]
        for run_no in range(1, args.runs + 1):
            for calls in levels:
                # a gateway start and warm-up, the level, the wait after it
                needed = 20 + args.ramp_s + max(args.duration_s, calls_take_s) + 20
                if time.monotonic() - began + needed > args.budget_s:
                    skipped.append(calls)
                    continue
                await _level(harness, calls, run_no, runs, timing)
                run = runs[-1]
                calls_take_s = min(MAX_CALL_S + CLOSE_GRACE_S,
                                   run.stopped - run.started - args.ramp_s)
            for calls in stock:
                await _stock_level(harness, calls, run_no, runs, timing)
        checks = None
        if any(r.server == "voicegw" for r in runs):
            gateway, sampler = await _start_gateway(harness, first=False)
            try:
                checks = await bench_report.integrity(
                    endpoint.gateway_url, harness.api_key, env["VOICEGW_DATABASE_URL"],
                    [*harness.warm_ups, *(r for r in runs if r.server == "voicegw")])
            finally:
                await sampler.stop()
                gateway.stop()
        return bench_report.Report(args, timing, runs, skipped, checks, log_dir / "gateway.log",
                                   time.monotonic() - began, vad_lines)
    finally:
        emulators.stop()
        await scratch.drop()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.logs:
            log_dir = Path(args.logs)
            log_dir.mkdir(parents=True, exist_ok=True)
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vgw-bench-")))
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        report = asyncio.run(_run(args, log_dir))
        section = report.markdown(COMMAND, _command_line(argv), dt.datetime.now(dt.UTC),
                                  platform.python_version())
        refusals = report.refusals()
    print(section)
    if args.no_record:
        return
    if refusals:
        print(f"NOT recorded in {args.output}:\n- " + "\n- ".join(refusals))
        raise SystemExit(3)
    bench_report.record(Path(args.output), section)
    print(f"recorded in {args.output}")


def _command_line(argv: list[str] | None) -> str:
    shown = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m load.bench_calls", *shown])


if __name__ == "__main__":
    main()

"""`python -m load.caller_cli` (`make load`): place one simulated phone call against a
running gateway, as Twilio would, and print what happened.

The caller says each `--say` text in turn (each after the agent fell quiet), records the
agent's audio (`--wav`), and prints the transcript, the latencies and, with `--api-key`,
the settled call record and the credits it cost. The STT emulator only "hears" texts it
was told about: pass `--emulators` (its base URL) so the caller registers them, and so
the agent's side of the conversation can be read back from the LLM emulator.

Against `voicegw dev`, no flags are needed: without `--gateway`, the caller runs in the
directory `make run` runs in (or set VOICEGW_DEV_DIR to its data directory) and every
value comes from the `running` section of `.voicegw/dev.json`; other flags given win.

    python -m load.caller_cli
    python -m load.caller_cli --say "Can I book a cleaning on Friday?" --wav call.wav

The explicit form (the banner of `voicegw dev` prints it with every value filled in;
the emulators listen on a port of their own, named on the banner's `emulators` line):

    python -m load.caller_cli --gateway http://127.0.0.1:8080 --auth-token $TWILIO_TOKEN \\
        --account-sid $TWILIO_SID --to +15550100001 --api-key $DEMO_API_KEY \\
        --emulators $EMULATORS_URL --say "I would like to book an appointment \\
        tomorrow at 3pm" --wav call.wav
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from load.caller import CallResult, CallScript, Endpoint, SimulatedCall
from load.dev_info import NoDevGateway, find_dev

DEFAULT_SAY = "I would like to book an appointment tomorrow at 3pm"
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
# Flag -> the key of dev.json's `running` section that fills it when not given.
FROM_DEV = {"gateway": "gateway_url", "public_url": "public_url",
            "auth_token": "twilio_auth_token", "account_sid": "twilio_account_sid",
            "to": "demo_number", "api_key": "demo_api_key", "emulators": "emulators_url"}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.caller_cli",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    env = os.environ.get
    parser.add_argument("--gateway", help="where the gateway listens (default: voicegw dev's, "
                        f"else {DEFAULT_GATEWAY})")
    parser.add_argument("--public-url", help="the gateway's VOICEGW_PUBLIC_URL, which "
                        "signatures are checked against (default: --gateway)")
    parser.add_argument("--auth-token", default=env("VOICEGW_TWILIO_AUTH_TOKEN"),
                        help="Twilio auth token the gateway checks signatures with "
                             "(default $VOICEGW_TWILIO_AUTH_TOKEN)")
    parser.add_argument("--account-sid", default=env("VOICEGW_TWILIO_ACCOUNT_SID"))
    parser.add_argument("--to", help="the tenant's number")
    parser.add_argument("--from", dest="caller", default="+15557654321")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT",
                        help=f"an utterance; repeat for several turns (default {DEFAULT_SAY!r})")
    parser.add_argument("--wav", type=Path, help="write the agent's audio here")
    parser.add_argument("--api-key", default=env("VOICEGW_API_KEY"),
                        help="the tenant's API key: print the call record and its cost")
    parser.add_argument("--emulators", help="base URL of the vendor emulators")
    parser.add_argument("--max-call-s", type=float, default=60.0)
    parser.add_argument("--agent-silence-s", type=float, default=0.8,
                        help="how long the agent must be quiet before the caller speaks")
    parser.add_argument("--barge-in-after-s", type=float,
                        help="speak the first utterance this long into the agent's speech")
    parser.add_argument("--stay", action="store_true",
                        help="do not hang up after the last reply (wait for the gateway)")
    args = parser.parse_args(argv)
    args.say = args.say or [DEFAULT_SAY]
    if args.gateway is None:  # find a running voicegw dev
        try:
            dev = find_dev()
        except NoDevGateway as exc:
            if args.auth_token is None or args.to is None:
                parser.error(str(exc))
        else:
            filled = [flag for flag in FROM_DEV if getattr(args, flag) is None]
            for flag in filled:
                setattr(args, flag, dev[FROM_DEV[flag]])
            print(f"using voicegw dev from {dev.path} for "
                  + ", ".join("--" + flag.replace("_", "-") for flag in filled))
    args.gateway = args.gateway or DEFAULT_GATEWAY
    args.account_sid = args.account_sid or "AC" + "0" * 32
    return args


async def _check_reachable(http: aiohttp.ClientSession, args: argparse.Namespace) -> str | None:
    """Why the call cannot be placed (before placing it), or None."""
    checks = [(args.gateway.rstrip("/") + "/readyz", "the gateway")]
    if args.emulators:
        checks.append((args.emulators.rstrip("/") + "/_emulator/messaging/stats",
                       "the vendor emulators (--emulators)"))
    for url, what in checks:
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 200:
                    continue
                return f"{what} at {url} answered {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{what} did not answer at {url} ({exc}): is voicegw dev running?"
    return None


async def _chat_count(http: aiohttp.ClientSession, emulators: str | None) -> int | None:
    if emulators is None:
        return None
    with contextlib.suppress(aiohttp.ClientError, OSError, KeyError, ValueError):
        async with http.get(emulators.rstrip("/") + "/_emulator/chat/log",
                            params={"since": "1000000000"}) as response:
            return int((await response.json())["count"])
    return None


async def _agent_lines(http: aiohttp.ClientSession, emulators: str | None, since: int | None,
                       said: list[str]) -> list[str] | None:
    """What the LLM emulator answered during this call (its requests since `since` that
    followed one of our utterances, or a tool result)."""
    if emulators is None or since is None:
        return None
    try:
        async with http.get(emulators.rstrip("/") + "/_emulator/chat/log",
                            params={"since": str(since)}) as response:
            if response.status != 200:
                return None
            entries: list[dict[str, Any]] = (await response.json())["entries"]
    except (aiohttp.ClientError, OSError, ValueError, KeyError):
        return None  # the call is what matters; its transcript is a bonus
    ours = {" ".join(text.split()) for text in said}
    lines = []
    for entry in entries:
        if entry["user"] is not None and " ".join(entry["user"].split()) not in ours:
            continue  # another call's turn
        if entry["tool"]:
            lines.append(f"[calls {entry['tool']} {entry['arguments']}]")
        elif entry["text"]:
            lines.append(str(entry["text"]))
    return lines


async def _call_record(http: aiohttp.ClientSession, gateway: str, api_key: str,
                       call_sid: str) -> dict[str, Any] | None:
    """The settled record: it appears once the outbox sink has written it."""
    headers = {"Authorization": f"Bearer {api_key}"}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with http.get(f"{gateway.rstrip('/')}/v1/calls/{call_sid}",
                            headers=headers) as response:
            if response.status == 200:
                record: dict[str, Any] = await response.json()
                return record
            if response.status != 404:
                print(f"GET /v1/calls/{call_sid}: {response.status} {await response.text()}")
                return None
        await asyncio.sleep(0.5)
    return None


def _print_result(result: CallResult, agent: list[str] | None) -> None:
    print(f"call {result.call_sid}")
    if result.refused_with:
        print(f"  refused: {' '.join(result.refused_with)}")
        return
    first = "-" if result.first_audio_ms is None else f"{result.first_audio_ms:.0f} ms"
    print(f"  agent's first audio after {first}")
    for index, text in enumerate(result.said):
        latency = (f"{result.turn_latencies_ms[index]:.0f} ms"
                   if index < len(result.turn_latencies_ms) else "no answer")
        print(f"  caller: {text}")
        print(f"    agent answered after {latency}")
    if agent is not None:
        print("  agent (from the LLM emulator):")
        for line in agent or ["(nothing)"]:
            print(f"    {line}")
    print(f"  agent audio {result.agent_audio_ms / 1000:.1f} s, marks echoed "
          f"{result.marks_echoed}, clears {result.clears}; ended by {result.ended_by} "
          f"(close code {result.close_code})")


def _print_record(record: dict[str, Any] | None) -> None:
    if record is None:
        print("  no call record within 15 s (is the outbox sink running?)")
        return
    print(f"  record: {record['disposition']}, {record['duration_ms'] / 1000:.1f} s, first "
          f"audio {record['first_audio_ms']} ms, {record['turns']} turns")
    for meter, units in sorted(record["usage"].items()):
        charge = record["charges_micro_credits"].get(meter)
        cost = "" if charge is None else f"  {charge / 1_000_000:g} credits"
        print(f"    {meter:<22} {units:>8}{cost}")
    print(f"  charged: {record['credits']} credits")
    for outcome in record.get("outcomes", []):
        print(f"  outcome: {outcome['kind']} ({outcome['record_id']})")


async def _main(args: argparse.Namespace) -> int:
    endpoint = Endpoint(args.gateway, args.public_url or args.gateway, args.auth_token,
                        args.account_sid, args.emulators)
    script = CallScript(list(args.say), agent_silence_s=args.agent_silence_s,
                        barge_in_after_s=args.barge_in_after_s, max_call_s=args.max_call_s,
                        hang_up_when_done=not args.stay)
    async with aiohttp.ClientSession() as http:
        problem = await _check_reachable(http, args)
        if problem is not None:
            print(f"no call placed: {problem}", file=sys.stderr)
            return 2
        print(f"calling {args.to} from {args.caller} through {args.gateway}, saying "
              + "; ".join(repr(text) for text in script.utterances), flush=True)
        since = await _chat_count(http, args.emulators)
        call = SimulatedCall(endpoint, args.to, args.caller, script, http)
        try:
            result = await call.run()
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            if not call.started:
                print(f"no call placed: {exc}", file=sys.stderr)
                return 1
            # Placed (and billed): say what broke, and still show its record.
            print(f"call {call.result.call_sid} was placed, then broke off: {exc}",
                  file=sys.stderr)
            result = call.result
        agent = await _agent_lines(http, args.emulators, since, result.said)
        _print_result(result, agent)
        if args.wav is not None and not result.refused_with:
            call.save_wav(args.wav)
            print(f"  agent audio written to {args.wav}")
        if args.api_key and call.started:
            _print_record(await _call_record(http, args.gateway, args.api_key,
                                             result.call_sid))
    return 0 if result.refused_with or len(result.turn_latencies_ms) >= len(result.said) else 1


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        sys.exit(asyncio.run(_main(args)))
    except (aiohttp.ClientError, OSError, RuntimeError) as exc:
        print(f"caller stopped: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

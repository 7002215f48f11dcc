"""`python -m load.emulators`: run the vendor emulators standalone.

`--ready-json` prints one JSON line on stdout once the server listens (`{"port": ...,
"base_urls": {...}}`) instead of the human listing: `voicegw dev` starts the emulators
as its child process and reads that line. `--exit-with-stdin` stops the server when its
stdin closes, so a parent that dies without cleaning up leaves no emulator behind.
The Twilio account and Graph token default to the gateway's own settings when set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading

from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.openai_stt import SttState, SttTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, start_emulators


def _stdin_closed(loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
    """Blocks its (daemon) thread until stdin reaches end of file, then sets `done`."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    loop.call_soon_threadsafe(done.set)


async def _main(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        chat=ChatState(ChatTiming(args.ttfb_ms, args.tokens_per_s)),
        vendors=VendorState(graph_token=args.graph_token, tts_pacing=args.tts_pacing,
                            twilio_accounts={args.twilio_account_sid: args.twilio_auth_token}),
        stt=SttState(SttTiming(latency_ms=args.stt_latency_ms)),
    )
    running = await start_emulators(args.host, args.port, config)
    if args.ready_json:
        print(json.dumps({"port": running.port, "base_urls": running.base_urls()}), flush=True)
    else:
        for vendor, url in running.base_urls().items():
            print(f"{vendor:<11} {url}", flush=True)
    done = asyncio.Event()
    if args.exit_with_stdin:
        threading.Thread(target=_stdin_closed, args=(asyncio.get_running_loop(), done),
                         daemon=True).start()
    try:
        await done.wait()
    finally:
        await running.stop()


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m load.emulators",
                                     description="Vendor emulators on one port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0: any free port")
    parser.add_argument("--ttfb-ms", type=float, default=20.0)
    parser.add_argument("--tokens-per-s", type=float, default=200.0)
    parser.add_argument("--tts-pacing", type=float, default=1.0)
    parser.add_argument("--stt-latency-ms", type=float, default=SttTiming.latency_ms,
                        help="time from the end of an STT upload to its transcript")
    parser.add_argument("--graph-token",
                        default=env("VOICEGW_WHATSAPP_ACCESS_TOKEN") or "dev-whatsapp-access-token")
    parser.add_argument("--twilio-account-sid",
                        default=env("VOICEGW_TWILIO_ACCOUNT_SID") or "AC" + "0" * 32)
    parser.add_argument("--twilio-auth-token",
                        default=env("VOICEGW_TWILIO_AUTH_TOKEN") or "dev-twilio-auth-token")
    parser.add_argument("--ready-json", action="store_true",
                        help="print one JSON line with the port and base URLs when ready")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="stop when stdin closes (for a parent process)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()

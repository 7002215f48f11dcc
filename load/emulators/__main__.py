"""`python -m load.emulators`: run the vendor emulators standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from load.emulators.openai_chat import ChatState, ChatTiming
from load.emulators.openai_stt import SttState, SttTiming
from load.emulators.rest_vendors import VendorState
from load.emulators.server import EmulatorConfig, start_emulators


async def _main(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        chat=ChatState(ChatTiming(args.ttfb_ms, args.tokens_per_s)),
        vendors=VendorState(graph_token=args.graph_token, tts_pacing=args.tts_pacing,
                            twilio_accounts={args.twilio_account_sid: args.twilio_auth_token}),
        stt=SttState(SttTiming(latency_ms=args.stt_latency_ms)),
    )
    running = await start_emulators(args.host, args.port, config)
    for vendor, url in running.base_urls().items():
        print(f"{vendor:<11} {url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.emulators",
                                     description="Vendor emulators on one port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--ttfb-ms", type=float, default=20.0)
    parser.add_argument("--tokens-per-s", type=float, default=200.0)
    parser.add_argument("--tts-pacing", type=float, default=1.0)
    parser.add_argument("--stt-latency-ms", type=float, default=SttTiming.latency_ms,
                        help="time from the end of an STT upload to its transcript")
    parser.add_argument("--graph-token", default="dev-whatsapp-access-token")
    parser.add_argument("--twilio-account-sid", default="AC" + "0" * 32)
    parser.add_argument("--twilio-auth-token", default="dev-twilio-auth-token")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()

"""`python -m load.message_cli whatsapp|sms`: send one customer message to a gateway, as
Meta or Twilio deliver it (signed), and print the agent's reply.

WhatsApp webhooks are signed with X-Hub-Signature-256 (the app secret), SMS webhooks with
X-Twilio-Signature (the auth token, over `--public-url`). With `--emulators`, the sender
first tells the Graph emulator that the customer wrote (opening their 24-hour window, as
Meta knows), then waits for the reply at the emulators and prints it.

Against `voicegw dev`, only the channel is needed: without `--gateway`, every value comes
from the `running` section of `.voicegw/dev.json` (or `$VOICEGW_DEV_DIR/dev.json`); other
flags given win.

    python -m load.message_cli whatsapp
    python -m load.message_cli sms --text "Can I book a cleaning next week?"
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from urllib.parse import urlencode

import aiohttp
import orjson

from load.dev_info import NoDevGateway, find_dev
from load.messages import (
    new_sms_sid,
    new_wamid,
    sign_whatsapp,
    sms_form,
    twilio_signature,
    whatsapp_text,
    whatsapp_value,
    whatsapp_webhook,
)

DEFAULT_TEXT = {"whatsapp": "Hello! What are your opening hours?",
                "sms": "Hi, can I book a cleaning next week?"}
FROM_DEV = {"gateway": "gateway_url", "public_url": "public_url",
            "app_secret": "whatsapp_app_secret", "phone_number_id": "whatsapp_phone_number_id",
            "auth_token": "twilio_auth_token", "account_sid": "twilio_account_sid",
            "to": "demo_number", "emulators": "emulators_url"}
NEEDED = {"whatsapp": ("gateway", "app_secret", "phone_number_id"),
          "sms": ("gateway", "auth_token", "to")}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.message_cli",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("channel", choices=("whatsapp", "sms"))
    parser.add_argument("--text", help="what the customer writes")
    parser.add_argument("--customer", help="who writes (default: a demo customer)")
    parser.add_argument("--gateway")
    parser.add_argument("--public-url", help="the URL Twilio signs (VOICEGW_PUBLIC_URL)")
    parser.add_argument("--app-secret", help="WhatsApp app secret (signs the webhook)")
    parser.add_argument("--phone-number-id", help="the tenant's WhatsApp phone_number_id")
    parser.add_argument("--auth-token", help="Twilio auth token (signs the webhook)")
    parser.add_argument("--account-sid")
    parser.add_argument("--to", help="the tenant's SMS number")
    parser.add_argument("--emulators", help="the emulators' base URL, to wait for the reply")
    parser.add_argument("--wait-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.gateway is None:  # find a running voicegw dev
        try:
            dev = find_dev()
        except NoDevGateway as exc:
            if any(getattr(args, flag) is None for flag in NEEDED[args.channel]):
                parser.error(str(exc))
        else:
            filled = [flag for flag in FROM_DEV if getattr(args, flag) is None]
            for flag in filled:
                setattr(args, flag, dev[FROM_DEV[flag]])
            print(f"using voicegw dev from {dev.path}")
    args.text = args.text or DEFAULT_TEXT[args.channel]
    args.customer = args.customer or ("15557654321" if args.channel == "whatsapp"
                                      else "+15557654321")
    args.public_url = args.public_url or args.gateway
    args.account_sid = args.account_sid or "AC" + "0" * 32
    return args


def _webhook(args: argparse.Namespace) -> tuple[str, str, bytes, dict[str, str]]:
    """(path, message id, body, headers) of the signed webhook."""
    if args.channel == "whatsapp":
        message_id = new_wamid()
        body = orjson.dumps(whatsapp_webhook([whatsapp_value(
            args.phone_number_id, [whatsapp_text(args.customer, args.text, message_id)])]))
        return "/whatsapp/webhook", message_id, body, {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_whatsapp(body, args.app_secret)}
    sid = new_sms_sid()
    form = sms_form(args.customer, args.to, args.text, message_sid=sid,
                    account_sid=args.account_sid)
    signed = args.public_url.rstrip("/") + "/twilio/sms"
    return "/twilio/sms", sid, urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(signed, form, args.auth_token)}


async def _sent(http: aiohttp.ClientSession, emulators: str, to: str) -> list[dict[str, str]]:
    async with http.get(emulators.rstrip("/") + "/_emulator/messaging/sent",
                        params={"to": to}) as response:
        messages: list[dict[str, str]] = (await response.json())["messages"]
        return messages


async def _main(args: argparse.Namespace) -> int:
    path, message_id, body, headers = _webhook(args)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        before = 0
        if args.emulators:
            before = len(await _sent(http, args.emulators, args.customer))
            if args.channel == "whatsapp":
                await http.post(args.emulators.rstrip("/") + "/_emulator/messaging/windows",
                                json={"phone_number_id": args.phone_number_id,
                                      "customers": [args.customer]})
        async with http.post(args.gateway.rstrip("/") + path, data=body,
                             headers=headers) as response:
            answer = await response.text()
            print(f"{args.channel} message {message_id} from {args.customer}: "
                  f"{args.text!r}\n  {path} answered {response.status}")
            if response.status != 200:
                print(f"  {answer[:300]}")
                return 1
        if not args.emulators:
            return 0
        deadline = time.monotonic() + args.wait_s
        while time.monotonic() < deadline:
            replies = (await _sent(http, args.emulators, args.customer))[before:]
            if replies:
                for reply in replies:
                    print(f"  reply {reply['id']}: {reply['text']!r}")
                return 0
            await asyncio.sleep(0.2)
        print(f"  no reply within {args.wait_s:g} s (GET /v1/balance shows "
              "paused_channels; the gateway's log says why)")
        return 1


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        sys.exit(asyncio.run(_main(args)))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"message not delivered: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

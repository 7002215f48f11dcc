"""`python -m load.messages`: correctly signed WhatsApp and SMS webhooks at a gateway, in
batches and with duplicates, as Meta and Twilio deliver them.

WhatsApp: each webhook carries `--batch` messages (Meta batches), signed with
X-Hub-Signature-256 (HMAC-SHA256 of the body, keyed with the app secret). SMS: one
message per webhook, signed with X-Twilio-Signature (HMAC-SHA1 of the URL and the sorted
form fields, keyed with the auth token), computed over `--public-url`, the URL the gateway
believes Twilio called. `--duplicates 0.2` delivers a fifth of the webhooks twice, at the
same time, as a retrying vendor does. With `--emulator`, the sender first tells the Graph
emulator that the customers wrote (opening their 24-hour windows, as Meta knows), then
waits until the replies have reached the emulators and reports messages per second.

The builders are used by the end-to-end tests too. This module never imports the gateway:
it speaks the wire protocols on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

# -- builders ------------------------------------------------------------------------------


def new_wamid() -> str:
    raw = uuid.uuid4().bytes + uuid.uuid4().bytes[:8]
    return "wamid." + base64.b64encode(raw).decode()


def new_sms_sid() -> str:
    return "SM" + uuid.uuid4().hex


def whatsapp_text(customer: str, text: str, message_id: str | None = None,
                  timestamp_s: int | None = None) -> dict[str, Any]:
    return {"from": customer, "id": message_id or new_wamid(),
            "timestamp": str(timestamp_s if timestamp_s is not None else int(time.time())),
            "type": "text", "text": {"body": text}}


def whatsapp_status(message_id: str, status: str, recipient: str, *,
                    error_code: int | None = None, timestamp_s: int | None = None
                    ) -> dict[str, Any]:
    item: dict[str, Any] = {"id": message_id, "status": status, "recipient_id": recipient,
                            "timestamp": str(timestamp_s or int(time.time()))}
    if error_code is not None:
        item["errors"] = [{"code": error_code, "title": "error", "message": "error",
                           "error_data": {"details": "emulated failure"}}]
    else:
        item["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service"}
    return item


def whatsapp_value(phone_number_id: str, messages: Sequence[dict[str, Any]] = (),
                   statuses: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp",
                             "metadata": {"display_phone_number": "15550100001",
                                          "phone_number_id": phone_number_id}}
    if messages:
        value["contacts"] = [{"profile": {"name": f"Customer {m['from'][-4:]}"},
                              "wa_id": m["from"]} for m in messages]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return value


def whatsapp_webhook(values: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One entry per value (Meta may put several changes in one delivery)."""
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA_ID", "changes": [{"value": v, "field": "messages"}]}
                      for v in values]}


def sign_whatsapp(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sms_form(sender: str, to: str, body: str, *, message_sid: str | None = None,
             account_sid: str = "AC" + "0" * 32, num_segments: int | None = None
             ) -> dict[str, str]:
    sid = message_sid or new_sms_sid()
    form = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": account_sid,
            "From": sender, "To": to, "Body": body, "NumMedia": "0", "SmsStatus": "received",
            "ApiVersion": "2010-04-01"}
    if num_segments is not None:
        form["NumSegments"] = str(num_segments)
    return form


# -- the sender ----------------------------------------------------------------------------


@dataclass
class Report:
    webhooks: int = 0
    messages: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    accepted_s: float = 0.0
    replied_s: float | None = None
    replies: int = 0

    def lines(self) -> list[str]:
        out = [f"webhooks sent     {self.webhooks} (HTTP statuses {dict(self.statuses)})",
               f"messages          {self.messages}",
               f"all accepted in   {self.accepted_s:.2f} s "
               f"({self.messages / max(self.accepted_s, 1e-9):,.0f} messages/s)"]
        if self.replied_s is not None:
            out.append(f"replies seen      {self.replies} in {self.replied_s:.2f} s "
                       f"({self.replies / max(self.replied_s, 1e-9):,.0f} replies/s)")
        return out


async def _deliver(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                   copies: int, report: Report) -> None:
    async def once() -> None:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            report.statuses[response.status] += 1
    await asyncio.gather(*(once() for _ in range(copies)))
    report.webhooks += copies


def _whatsapp_jobs(args: argparse.Namespace, customers: list[str]
                   ) -> list[tuple[bytes, dict[str, str]]]:
    jobs = []
    for start in range(0, args.messages, args.batch):
        count = min(args.batch, args.messages - start)
        messages = [whatsapp_text(customers[(start + i) % len(customers)],
                                  f"Hello, message {start + i}: what are your opening hours?")
                    for i in range(count)]
        body = orjson.dumps(whatsapp_webhook([whatsapp_value(args.phone_number_id, messages)]))
        jobs.append((body, {"Content-Type": "application/json",
                            "X-Hub-Signature-256": sign_whatsapp(body, args.app_secret)}))
    return jobs


def _sms_jobs(args: argparse.Namespace, customers: list[str]) -> list[tuple[bytes, dict[str, str]]]:
    url = args.public_url.rstrip("/") + "/twilio/sms"
    jobs = []
    for n in range(args.messages):
        form = sms_form(customers[n % len(customers)], args.to, f"Hi, message {n}: open today?",
                        account_sid=args.account_sid, num_segments=1)
        jobs.append((urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(url, form, args.twilio_auth_token)}))
    return jobs


async def _replies(http: aiohttp.ClientSession, emulator: str) -> int:
    async with http.get(f"{emulator.rstrip('/')}/_emulator/messaging/stats") as response:
        stats = await response.json()
    return int(stats["graph_messages"]) + int(stats["twilio_messages"])


async def run(args: argparse.Namespace) -> Report:
    customers = [f"49151{n:07d}" if args.channel == "whatsapp" else f"+1555{n:07d}"
                 for n in range(args.customers)]
    jobs = (_whatsapp_jobs if args.channel == "whatsapp" else _sms_jobs)(args, customers)
    path = "/whatsapp/webhook" if args.channel == "whatsapp" else "/twilio/sms"
    url = args.gateway.rstrip("/") + path
    report = Report(messages=args.messages)
    limit = asyncio.Semaphore(args.concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        before = 0
        if args.emulator:
            before = await _replies(http, args.emulator)
            if args.channel == "whatsapp":
                await http.post(f"{args.emulator.rstrip('/')}/_emulator/messaging/windows",
                                json={"phone_number_id": args.phone_number_id,
                                      "customers": customers})
        report.started = time.perf_counter()

        async def one(body: bytes, headers: dict[str, str]) -> None:
            async with limit:
                copies = 2 if random.random() < args.duplicates else 1
                await _deliver(http, url, body, headers, copies, report)

        await asyncio.gather(*(one(body, headers) for body, headers in jobs))
        report.accepted_s = time.perf_counter() - report.started
        if args.emulator:
            deadline = time.monotonic() + args.wait_s
            while time.monotonic() < deadline:
                report.replies = await _replies(http, args.emulator) - before
                if report.replies >= args.messages:
                    break
                await asyncio.sleep(0.05)
            report.replied_s = time.perf_counter() - report.started
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m load.messages", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--gateway", default="http://127.0.0.1:8080")
    p.add_argument("--public-url", default=None, help="the URL Twilio signs (VOICEGW_PUBLIC_URL)")
    p.add_argument("--channel", choices=("whatsapp", "sms"), default="whatsapp")
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--batch", type=int, default=10, help="WhatsApp messages per webhook")
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--duplicates", type=float, default=0.1,
                   help="fraction of webhooks delivered twice at once")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--app-secret", default="dev-whatsapp-app-secret")
    p.add_argument("--phone-number-id", default="demo-wa-phone-id",
                   help="the tenant's WhatsApp phone_number_id (voicegw dev: the default)")
    p.add_argument("--twilio-auth-token", default="dev-twilio-auth-token")
    p.add_argument("--account-sid", default="AC" + "0" * 32)
    p.add_argument("--to", default="+15550100001", help="the tenant's SMS number")
    p.add_argument("--emulator", default=None, help="the emulators' base URL, to wait for replies")
    p.add_argument("--wait-s", type=float, default=60.0)
    return p


def main() -> None:
    args = parser().parse_args()
    args.public_url = args.public_url or args.gateway
    report = asyncio.run(run(args))
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()

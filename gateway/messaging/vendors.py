"""The vendor calls that send a message: the Graph API (WhatsApp) and Twilio's Messages
REST resource (SMS). The codecs build the requests and read the answers; these only move
bytes, retrying once where a retry cannot send twice.

A retry is safe only when nothing was sent: the connection was refused, or the vendor
answered 429/5xx (it did not take the message). A timeout after the request went out
is *not* retried: the vendor may have sent it, and a customer getting a reply twice is
worse than the rare reply that is recorded as `unknown`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from gateway.codecs import sms_webhook, whatsapp

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
RETRY_PAUSE_S = 0.5


@dataclass(frozen=True)
class Sent:
    """What became of one send."""

    vendor_id: str | None
    segments: int | None = None
    error_code: int | None = None  # the vendor's code (131047: outside the window)
    error: str = ""
    unknown: bool = False  # the request may or may not have reached the vendor

    @property
    def ok(self) -> bool:
        return self.vendor_id is not None

    @property
    def window_closed(self) -> bool:
        return self.error_code == whatsapp.WINDOW_CLOSED


class GraphApi:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, access_token: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {access_token}"}

    async def send_text(self, phone_number_id: str, to: str, body: str) -> Sent:
        url = f"{self.base}/{phone_number_id}/messages"
        payload = whatsapp.text_message(to, body)
        for attempt in (1, 2):
            try:
                async with self.http.post(url, json=payload, headers=self.headers,
                                          timeout=TIMEOUT) as response:
                    result = whatsapp.parse_send_response(response.status, await response.read())
            except aiohttp.ClientConnectorError as exc:
                result = whatsapp.SendResult(None, None, f"cannot connect: {exc}"[:200], True)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Sent(None, error=f"{type(exc).__name__}: {exc}"[:200], unknown=True)
            if result.ok or not result.retryable or attempt == 2:
                break
            await asyncio.sleep(RETRY_PAUSE_S)
        return Sent(result.message_id, None, result.error_code, result.error_title)


class TwilioMessages:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, account_sid: str,
                 auth_token: str, status_callback: str | None) -> None:
        self.http = http
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.headers = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}
        self.status_callback = status_callback

    async def send(self, sender: str, to: str, body: str) -> Sent:
        form = sms_webhook.send_form(sender, to, body, self.status_callback)
        for attempt in (1, 2):
            try:
                async with self.http.post(self.url, data=form, headers=self.headers,
                                          timeout=TIMEOUT) as response:
                    result = sms_webhook.parse_send_response(response.status,
                                                             await response.read())
            except aiohttp.ClientConnectorError as exc:
                result = sms_webhook.SendResult(None, None, None, f"cannot connect: {exc}"[:200],
                                                True)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Sent(None, error=f"{type(exc).__name__}: {exc}"[:200], unknown=True)
            if result.ok or not result.retryable or attempt == 2:
                break
            await asyncio.sleep(RETRY_PAUSE_S)
        return Sent(result.message_sid, result.num_segments, result.error_code,
                    result.error_message)

"""Twilio's REST API for live calls: hang up (`Status=completed`) and transfer (new TwiML
with a `<Dial>`). The phone side of `agents.voice.call.CallControl`.

Kept out of the media-stream codec on purpose: a codec that makes network calls cannot
be tested with literal vectors (pipecat's Twilio serializer hangs up from inside itself).
"""

from __future__ import annotations

import aiohttp

from gateway.codecs import twiml

TIMEOUT = aiohttp.ClientTimeout(total=10)


class TwilioRestError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Twilio answered {status}: {body[:200]}")
        self.status = status


class TwilioCalls:
    """One account's calls endpoint."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, account_sid: str,
                 auth_token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._account = account_sid
        self._auth = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}

    async def update(self, call_sid: str, form: dict[str, str]) -> None:
        url = f"{self._base}/2010-04-01/Accounts/{self._account}/Calls/{call_sid}.json"
        async with self._http.post(url, data=form, headers=self._auth, timeout=TIMEOUT) as resp:
            if resp.status >= 300:
                raise TwilioRestError(resp.status, await resp.text())

    def control(self, call_sid: str, *, language: str = "en-US") -> CallOnTwilio:
        return CallOnTwilio(self, call_sid, language)


class CallOnTwilio:
    """CallControl for one call."""

    def __init__(self, calls: TwilioCalls, call_sid: str, language: str) -> None:
        self._calls = calls
        self._sid = call_sid
        self._language = language

    async def hang_up(self) -> None:
        await self._calls.update(self._sid, {"Status": "completed"})

    async def transfer(self, number: str) -> None:
        await self._calls.update(self._sid, {"Twiml": twiml.dial(number)})

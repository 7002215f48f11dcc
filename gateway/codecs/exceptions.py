"""Every error the codecs raise on bad input, under one root, so a handler can catch
`CodecError` and know that nothing else (a bug, a lost connection) slipped through.

    CodecError(ValueError)          bad input to a codec; never a bug in the gateway
    ├── MediaStreamError            Twilio Media Streams; `close_code` is the websocket
    │   │                           close code (RFC 6455 §7.4.1) to end the stream with
    │   ├── MalformedMessage        1007: not JSON, not an object, a field missing or of
    │   │                           the wrong type, bad base64
    │   ├── MessageTooBig           1009: a message or a decoded audio payload over its cap
    │   └── OutOfOrder              1002: breaks the stream's order: media/dtmf/mark/stop
    │                               before start, a second start, connected after start,
    │                               anything after stop, a streamSid other than start's, a
    │                               sequenceNumber that does not increase. (An unknown
    │                               event is no error: the parser skips it.)
    ├── SignatureError              an X-Twilio-Signature that does not match the request
    ├── TwimlError                  TwiML we refuse to build or to parse
    ├── TokenError                  a session token we refuse; `reason` says why
    ├── WhatsAppError               WhatsApp Cloud API webhooks
    │   ├── WhatsAppSignatureError  X-Hub-Signature-256 missing (`missing`: answer 401)
    │   │                           or not the HMAC of the body (answer 403)
    │   ├── WhatsAppPayloadError    the body is not a webhook: not JSON, not an object,
    │   │                           not `whatsapp_business_account`, no `entry` list
    │   └── WhatsAppSubscriptionError  the verify handshake (`reason`: missing | mismatch)
    └── SmsWebhookError             a Twilio Messaging webhook missing MessageSid, From or
                                    To, or with a malformed field

Add the errors of a new protocol as one more branch under `CodecError` (a base class per
protocol, its leaves below it), and write the branch into the tree above.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CodecError",
    "MalformedMessage",
    "MediaStreamError",
    "MessageTooBig",
    "OutOfOrder",
    "SignatureError",
    "TokenError",
    "TokenReason",
    "TwimlError",
    "WhatsAppError",
    "WhatsAppSignatureError",
    "WhatsAppPayloadError",
    "WhatsAppSubscriptionError",
    "SmsWebhookError",
]


class CodecError(ValueError):
    """Bad input to a codec. A ValueError, so generic input validation catches it too."""


# --- Twilio Media Streams ------------------------------------------------------------------


class MediaStreamError(CodecError):
    """A Media Streams message the stream cannot go on after; close with `close_code`."""

    close_code: int = 1002

    @property
    def close_reason(self) -> str:
        """The message cut to what a websocket close frame can carry (123 bytes of UTF-8)."""
        return str(self).encode("utf-8", "replace")[:123].decode("utf-8", "ignore")


class MalformedMessage(MediaStreamError):
    close_code = 1007  # invalid frame payload data


class MessageTooBig(MediaStreamError):
    close_code = 1009  # message too big


class OutOfOrder(MediaStreamError):
    close_code = 1002  # protocol error


# --- Twilio webhooks -----------------------------------------------------------------------


class SignatureError(CodecError):
    """The X-Twilio-Signature header is missing, garbled or does not match the request."""


class TwimlError(CodecError):
    """TwiML that cannot be built (a forbidden character in an attribute) or that we refuse
    to parse (too big, not XML, a DOCTYPE or entity, no <Connect><Stream>)."""


# --- Session tokens ------------------------------------------------------------------------

TokenReason = Literal["malformed", "bad_signature", "expired", "wrong_purpose"]


class TokenError(CodecError):
    """A session token we refuse. Branch on `reason`, never on the message text."""

    def __init__(self, reason: TokenReason, detail: str = "") -> None:
        super().__init__(f"session token {reason}" + (f": {detail}" if detail else ""))
        self.reason: TokenReason = reason


# --- WhatsApp Cloud API webhooks -----------------------------------------------------------


class WhatsAppError(CodecError):
    """A WhatsApp Cloud API webhook request we refuse."""


class WhatsAppSignatureError(WhatsAppError):
    """X-Hub-Signature-256 is missing (`missing`) or does not match the raw body."""

    def __init__(self, detail: str, *, missing: bool) -> None:
        super().__init__(detail)
        self.missing = missing


class WhatsAppPayloadError(WhatsAppError):
    """The (signed) body is not a WhatsApp webhook at all."""


class WhatsAppSubscriptionError(WhatsAppError):
    """The GET verification handshake: `missing` a parameter, or the token `mismatch`es."""

    def __init__(self, reason: Literal["missing", "mismatch"], detail: str) -> None:
        super().__init__(detail)
        self.reason: Literal["missing", "mismatch"] = reason


# --- Twilio Messaging (SMS) webhooks -------------------------------------------------------


class SmsWebhookError(CodecError):
    """A Twilio Messaging webhook without MessageSid, From or To, or a field malformed."""

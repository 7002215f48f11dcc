"""Models of the messaging API and of the vendors' webhooks (Twilio forms, Meta's JSON).

The webhooks' bodies are read by the gateway's codecs (gateway/codecs), which check the
signature over the raw bytes first and keep what they cannot parse; these models are
what the document shows of them (the members the gateway reads; vendors send more).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models import Answer, Credits, Request


class _Form(BaseModel):
    model_config = ConfigDict(extra="allow")


class TwilioVoiceForm(_Form):
    """Twilio's voice webhook form (a call comes in)."""

    CallSid: str = Field(pattern=r"^CA[0-9a-f]{32}$")
    To: str = Field(description="the number called, E.164")
    From: str | None = Field(None, description="the caller, E.164")
    AccountSid: str | None = None


class TwilioCallStatusForm(_Form):
    """Twilio's call status callback form."""

    CallSid: str
    CallStatus: str = Field(examples=["completed"])
    To: str | None = None
    CallDuration: str | None = Field(None, description="seconds, on completed")


class TwilioSmsForm(_Form):
    """Twilio's inbound message form."""

    MessageSid: str
    From: str
    To: str
    Body: str = Field(max_length=3200)
    NumSegments: str | None = None


class TwilioSmsStatusForm(_Form):
    """Twilio's message status callback form."""

    MessageSid: str
    MessageStatus: str = Field(examples=["delivered"])
    ErrorCode: str | None = None


class WhatsAppVerifyQuery(BaseModel):
    """Meta's subscription handshake."""

    model_config = ConfigDict(populate_by_name=True)
    mode: Literal["subscribe"] = Field(alias="hub.mode")
    verify_token: str = Field(alias="hub.verify_token")
    challenge: str = Field(alias="hub.challenge")


class WhatsAppWebhook(BaseModel):
    """Meta's webhook: `entry[].changes[].value` holds messages and statuses."""

    model_config = ConfigDict(extra="allow")
    object: Literal["whatsapp_business_account"]
    entry: list[dict[str, Any]]


class WebhookAccepted(Answer):
    messages: int = Field(description="new messages stored")
    duplicates: int = Field(description="messages seen before (a vendor retry)")
    statuses: int = Field(description="delivery statuses recorded")
    rejected: int = Field(description="entries kept in webhook_rejects")


class SendMessage(Request):
    channel: Literal["whatsapp", "sms"]
    to: str = Field(max_length=32, pattern=r"^\s*\+?[1-9][0-9]{5,19}\s*$",
                    description="E.164 for SMS (`+` and 7-15 digits); digits with the country "
                                "code (a leading + allowed) for WhatsApp")
    text: str = Field(max_length=4096, pattern=r"\S", description=(
        "at most 4,096 characters on WhatsApp, 1,600 on SMS; not blank"))



class MessageSent(Answer):
    id: str = Field(description="the vendor's message id")
    channel: Literal["whatsapp", "sms"]
    to: str
    segments: int | None = Field(description="SMS segments billed (null on WhatsApp)")
    credits: str = Credits
    micro_credits: int

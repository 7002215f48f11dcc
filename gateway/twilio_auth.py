"""The one check of X-Twilio-Signature for every Twilio webhook: `/twilio/voice`,
`/twilio/status`, `/twilio/sms` and `/twilio/sms/status`.

One fault, one answer, whichever channel Twilio calls:
- no Twilio auth token configured: 503 `channel_not_configured` (nothing can be verified;
  the body is not read);
- a signature missing, or one that does not match the URL and form: 403
  `invalid_signature` (a missing header is not a different fault from a wrong one; the
  detail says which). Nothing is stored before this check passes.

The URL signed is the public URL (`VOICEGW_PUBLIC_URL`) with the request's path and
query, since Twilio signs the address it called, not the one the proxy forwarded to.
"""

from __future__ import annotations

from aiohttp import web

from api.problems import Problem
from api.requests import form_fields
from gateway.codecs import twilio_signature
from gateway.config import Settings

HEADER = "X-Twilio-Signature"
MAX_FORM_BYTES = 64 * 1024  # a Twilio webhook form is a few KB


async def signed_twilio_form(request: web.Request, settings: Settings,
                             limit: int = MAX_FORM_BYTES) -> dict[str, list[str]]:
    """The webhook's form fields, once its X-Twilio-Signature proved Twilio sent them."""
    token = settings.twilio_auth_token
    if not token:
        raise Problem(503, "channel_not_configured", "VOICEGW_TWILIO_AUTH_TOKEN is not set")
    params = await form_fields(request, limit)
    signature = request.headers.get(HEADER, "")
    if not signature:
        raise Problem(403, "invalid_signature", f"{HEADER} header missing")
    url = settings.public_url.rstrip("/") + request.path_qs
    if not twilio_signature.validate(url, params, signature, token):
        raise Problem(403, "invalid_signature", f"{HEADER} does not match this request")
    return params

"""Structured JSON logs carrying tenant, call and request ids.

Ids travel in context variables, so a log line deep inside a call carries them without
threading them through every function. Two rules are enforced here rather than hoped
for at every call site: no secret setting value and no full phone number ever reaches a
log line (numbers are masked to their last two digits). Ids are never rewritten: a digit
run that touches a letter, `_`, `.`, `-`, `+`, `/` or `=` is part of an id (CallSid, UUID,
wamid, message sid), not a phone number, and the id fields are not scanned at all.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

tenant_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tenant_id", default=None
)
call_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# A number stands alone: neither end may touch an id's characters (see the docstring).
_PHONE = re.compile(r"(?<![\w+/.\-])\+?\(?\d[\d\- ()]{5,}\d(?![\w+/=])")
_ID_FIELDS = ("tenant_id", "call_id", "request_id")
_EXTRA_FIELDS = (*_ID_FIELDS, "route", "status", "duration_ms", "event", "timing")


def mask_phone_numbers(text: str) -> str:
    """Replaces every free-standing run of 7+ digits (spaces, dashes and parentheses
    allowed inside) by `+…NN`; digits inside ids are left alone."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) < 7:
            return match.group(0)
        return "+…" + digits[-2:]

    return _PHONE.sub(mask, text)


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return mask_phone_numbers(text)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._scrub(record.getMessage()),
        }
        for name, var in (
            ("tenant_id", tenant_id_var),
            ("call_id", call_id_var),
            ("request_id", request_id_var),
        ):
            value = var.get()
            if value is not None:
                entry[name] = value
        for name in _EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                scrub = isinstance(value, str) and name not in _ID_FIELDS
                entry[name] = self._scrub(value) if scrub else value
        if record.exc_info:
            entry["exc"] = self._scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    route_loguru_to_logging()


def route_loguru_to_logging(level: str = "WARNING") -> None:
    """pipecat logs through loguru, at DEBUG by default: several lines per frame of every
    call. Its warnings and errors go through our JSON lines (masked like ours); its
    chatter is dropped before it costs anything."""
    from loguru import logger as loguru_logger

    def forward(message: Any) -> None:
        record = message.record
        logging.getLogger(f"pipecat.{record['name']}").log(
            record["level"].no, record["message"])

    loguru_logger.remove()
    loguru_logger.add(forward, level=level, format="{message}")

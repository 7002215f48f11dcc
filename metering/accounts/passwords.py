"""Passwords: argon2id (argon2-cffi's RFC 9106 defaults), never stored or logged in clear.

Hashing and checking take tens of milliseconds of CPU on purpose: callers run them off
the event loop (`asyncio.to_thread`)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from metering.accounts.errors import InvalidField

MIN_PASSWORD = 10
MAX_PASSWORD = 256
_HASHER = PasswordHasher()
# Checked against when the e-mail is unknown, so an unknown address costs the same time
# as a wrong password (no account discovery by timing).
_DUMMY = _HASHER.hash("voicegw-no-such-user")


def check_password_rule(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidField("password", f"must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    if not password.strip():
        raise InvalidField("password", "must not be blank")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password_rule(password))


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; a missing hash still costs one check."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False

"""Redis key names. Every key of a tenant carries the hash tag `{t:<tenant>}`, so each
credit-control script touches one hash slot and runs unchanged on Redis Cluster."""

from __future__ import annotations

from dataclasses import dataclass

_FORBIDDEN = set("{}\r\n ")


def check_id(kind: str, value: str) -> str:
    if not value or len(value) > 200 or _FORBIDDEN & set(value):
        raise ValueError(f"{kind} must be 1-200 characters without braces or whitespace")
    return value


@dataclass(frozen=True)
class TenantKeys:
    prefix: str
    tenant: str

    @property
    def tag(self) -> str:
        return f"{self.prefix}{{t:{self.tenant}}}"

    @property
    def account(self) -> str:
        return f"{self.tag}:acct"

    @property
    def live(self) -> str:
        return f"{self.tag}:live"

    @property
    def outbox(self) -> str:
        return f"{self.tag}:outbox"

    @property
    def topups(self) -> str:
        return f"{self.tag}:topups"

    @property
    def plan_credits(self) -> str:
        """Plan-credit grants and expiries applied: id ("grant:2026-11") -> micro-credits."""
        return f"{self.tag}:plan_credits"

    def month(self, month: str) -> str:
        """Usage this tenant settled in a calendar month (`YYYY-MM`)."""
        return f"{self.tag}:mtd:{month}"

    def session(self, session_id: str) -> str:
        return f"{self.tag}:s:{session_id}"

    def event(self, event_id: str) -> str:
        return f"{self.tag}:evt:{event_id}"


def tenant_keys(prefix: str, tenant: str) -> TenantKeys:
    return TenantKeys(prefix, check_id("tenant id", tenant))


def live_pattern(prefix: str) -> str:
    return f"{prefix}{{t:*}}:live"


def tenant_of_live_key(prefix: str, key: str) -> str:
    return key[len(prefix) + 3 : -len("}:live")]


def live_channel(prefix: str) -> str:
    """The pub/sub channel the credit scripts PUBLISH a tenant id on after changing its
    balance or sessions (lib.lua `changed`); the live dashboards subscribe to it."""
    return f"{prefix}live-changes"

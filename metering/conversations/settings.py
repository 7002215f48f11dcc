"""The tenant settings conversations and KPIs read (columns of `tenants`, migration 0007).

| setting | default | bounds |
| --- | --- | --- |
| `timezone` | `UTC` | an IANA zone name (`Europe/Berlin`), checked against the zone database |
| `conversation_idle_minutes` | 30 | 1..1440: a longer text pause starts a new conversation |
| `transcript_retention_days` | 90 | 1..3650: transcripts older than this are deleted |
| `mask_transcripts` | false | phone numbers and e-mails in transcript text hidden |
| `csat_enabled` | false | the agent asks for a 1-5 rating after each conversation |
| `service_level_s` | 20 | 1..3600: "answered within" for the service-level KPI |
| `report_emails` | [] | at most 20 addresses for the weekly report |

`update_settings` checks every bound before writing (one UPDATE, all or nothing) and
raises `InvalidSetting` naming the setting at fault.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

MAX_REPORT_EMAILS = 20
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_COLUMNS = ("timezone, conversation_idle_minutes, transcript_retention_days, "
            "mask_transcripts, csat_enabled, service_level_s, report_emails")
_BOUNDS = {"conversation_idle_minutes": (1, 1440), "transcript_retention_days": (1, 3650),
           "service_level_s": (1, 3600)}


class InvalidSetting(ValueError):
    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{setting}: {detail}")
        self.setting = setting
        self.detail = detail


@dataclass(frozen=True)
class TenantSettings:
    timezone: str = "UTC"
    conversation_idle_minutes: int = 30
    transcript_retention_days: int = 90
    mask_transcripts: bool = False
    csat_enabled: bool = False
    service_level_s: int = 20
    report_emails: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["report_emails"] = list(self.report_emails)
        return values


SETTING_NAMES = tuple(TenantSettings.__dataclass_fields__)


def _settings(row: asyncpg.Record) -> TenantSettings:
    return TenantSettings(row["timezone"], row["conversation_idle_minutes"],
                          row["transcript_retention_days"], row["mask_transcripts"],
                          row["csat_enabled"], row["service_level_s"],
                          tuple(row["report_emails"]))


async def settings_of(conn: asyncpg.Pool | asyncpg.Connection,
                      tenant_id: uuid.UUID) -> TenantSettings | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE id = $1",  # noqa: S608
                              tenant_id)
    return None if row is None else _settings(row)


def valid_timezone(name: str) -> bool:
    if not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def checked(current: TenantSettings, changes: Mapping[str, Any]) -> TenantSettings:
    """`current` with `changes` applied, every bound checked."""
    values = current.to_json()
    for name, value in changes.items():
        if name not in values:
            raise InvalidSetting(name, "is not a setting")
        if name == "timezone":
            if not isinstance(value, str) or not valid_timezone(value):
                raise InvalidSetting(name, "must be an IANA time zone such as Europe/Berlin")
        elif name in _BOUNDS:
            low, high = _BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidSetting(name, f"must be a whole number from {low} to {high}")
        elif name in ("mask_transcripts", "csat_enabled"):
            if not isinstance(value, bool):
                raise InvalidSetting(name, "must be true or false")
        elif name == "report_emails":
            if not isinstance(value, list) or len(value) > MAX_REPORT_EMAILS:
                raise InvalidSetting(name, f"must be a list of at most {MAX_REPORT_EMAILS}")
            for email in value:
                if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email):
                    raise InvalidSetting(name, f"{str(email)[:80]!r} is not an e-mail address")
            value = list(dict.fromkeys(value))
        values[name] = value
    values["report_emails"] = tuple(values["report_emails"])
    return TenantSettings(**values)


async def update_settings(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                          changes: Mapping[str, Any]) -> TenantSettings | None:
    """Applies `changes` (checked first); None when the tenant does not exist."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE",  # noqa: S608
            tenant_id)
        if row is None:
            return None
        new = checked(_settings(row), changes)
        try:
            await conn.execute(
                """UPDATE tenants SET timezone = $2, conversation_idle_minutes = $3,
                       transcript_retention_days = $4, mask_transcripts = $5,
                       csat_enabled = $6, service_level_s = $7, report_emails = $8
                   WHERE id = $1""",
                tenant_id, new.timezone, new.conversation_idle_minutes,
                new.transcript_retention_days, new.mask_transcripts, new.csat_enabled,
                new.service_level_s, list(new.report_emails))
        except (asyncpg.CheckViolationError, asyncpg.InvalidParameterValueError) as exc:
            # A zone Python's tz database knows and PostgreSQL's does not (the check of
            # migration 0008 evaluates the zone).
            if "time zone" in str(exc) or "timezone" in str(getattr(exc, "constraint_name", "")):
                raise InvalidSetting("timezone", "is not a time zone the database knows"
                                     ) from exc
            raise
    return new

"""Building test settings that point at this test's own real servers."""

from __future__ import annotations

from typing import Any

from gateway.config import Settings, load_settings

ADMIN_TOKEN = "test-admin-token-0123456789"
TWILIO_AUTH_TOKEN = "test-twilio-auth-token"


def make_settings(
    redis_url: str, database_url: str, key_prefix: str, **overrides: Any
) -> Settings:
    env = {
        "VOICEGW_REDIS_URL": redis_url,
        "VOICEGW_DATABASE_URL": database_url,
        "VOICEGW_PUBLIC_URL": "https://gw.test",
        "VOICEGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "VOICEGW_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "VOICEGW_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "VOICEGW_REDIS_PREFIX": key_prefix,
        "VOICEGW_MIGRATE_ON_START": "false",
        "VOICEGW_SHUTDOWN_GRACE_S": "1",
    }
    env.update({f"VOICEGW_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)

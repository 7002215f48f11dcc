"""Typed settings from `VOICEGW_*` environment variables and an optional TOML file.

The environment wins over the file (`VOICEGW_CONFIG=path.toml`, keys are the variable
names without the prefix, lower case). Every problem is collected and reported at once,
one line per variable, so a misconfigured deployment is fixed in one round.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

PREFIX = "VOICEGW_"


class ConfigError(Exception):
    """One or more settings are missing or invalid; `problems` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    redis_url: str
    database_url: str
    public_url: str = ""  # required by `serve` (REQUIRED), not by the metering commands
    admin_token: str = ""
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    openai_api_key: str = ""
    openai_base_url: str = "https://api.openai.com/v1"
    elevenlabs_api_key: str = ""
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_access_token: str = ""
    graph_api_base: str = "https://graph.facebook.com/v21.0"
    host: str = "0.0.0.0"
    port: int = 8080
    redis_prefix: str = "vgw:"
    log_level: str = "INFO"
    shutdown_grace_s: float = 30.0
    run_sink: bool = True
    # The hourly pass that charges each held number's monthly fee (idempotent, so every
    # process may run it). Off only where something else charges them: the in-process
    # tests, whose exact balances a pass landing mid-test would move.
    run_number_fees: bool = True
    migrate_on_start: bool = True
    # Live phone calls one process admits: about what one core holds with latency intact
    # (BENCHMARKS.md, "Phone calls"); more would degrade every call, not just the extra.
    # An upper bound now: below it, calls are admitted by the live load (gateway/voice/
    # capacity.py): refused while the event loop runs more than call_lag_limit_ms late on
    # average, or when this process's CPU with one more call would pass call_cpu_limit cores.
    max_calls: int = 200
    call_cpu_limit: float = 0.6
    call_lag_limit_ms: float = 25.0
    # A call records its usage in the credit store this often between renewals: a gateway
    # that dies leaves at most this much of each call unbilled (docs/metering.md).
    usage_report_s: float = 5.0
    # Invoice numbers read <issuer>-<year>-<counter> (docs/billing.md); one gapless sequence
    # per issuer and year, so every gateway of a deployment must use the same issuer.
    invoice_issuer: str = "VGW"
    # Client sockets (gateway/sockets.py): a connection between requests is closed after
    # idle_timeout_s; a request line and headers must arrive within header_timeout_s of
    # their first byte; one process holds at most max_connections_per_ip connections from
    # one client address (0: no cap). Twilio's media streams may come from few addresses:
    # keep the cap well above max_calls.
    idle_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    max_connections_per_ip: int = 256
    llm_model: str = "gpt-4.1-mini"
    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "eleven_flash_v2_5"
    # Webhook URLs may resolve to loopback/private addresses (development and tests only:
    # otherwise a tenant could make the gateway call into its own network).
    webhooks_allow_private: bool = False
    # The session cookie is Secure (sent over HTTPS only); `voicegw dev` serves plain HTTP
    # on the laptop and turns it off.
    secure_cookies: bool = True
    smtp_url: str = ""  # smtp://[user:password@]host[:port] or smtps://...; empty: no mail
    mail_from: str = "voicegw <noreply@localhost>"

    def redacted(self) -> dict[str, str]:
        """The settings with every secret masked, for logs and `voicegw dev` output."""
        shown: dict[str, str] = {}
        for item in fields(self):
            value = str(getattr(self, item.name))
            if item.name in SECRETS and value:
                value = value[:4] + "…" if len(value) > 12 else "…"
            shown[item.name] = value
        return shown


# More often than twice a second costs a Redis round trip per call for nothing; longer
# than half the phone hold's validity (60 s) changes nothing, renewals come first.
MIN_USAGE_REPORT_S, MAX_USAGE_REPORT_S = 0.5, 60.0
REQUIRED = ("redis_url", "database_url", "public_url", "admin_token")
SECRETS = frozenset(
    {
        "admin_token",
        "twilio_auth_token",
        "openai_api_key",
        "elevenlabs_api_key",
        "whatsapp_app_secret",
        "whatsapp_verify_token",
        "whatsapp_access_token",
        "smtp_url",
    }
)
_URL_SCHEMES = {
    "redis_url": ("redis", "rediss", "unix"),
    "database_url": ("postgres", "postgresql"),
    "public_url": ("http", "https"),
    "twilio_api_base": ("http", "https"),
    "openai_base_url": ("http", "https"),
    "elevenlabs_base_url": ("http", "https"),
    "graph_api_base": ("http", "https"),
    "smtp_url": ("smtp", "smtps"),
}


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _raw_values(environ: Mapping[str, str]) -> dict[str, str]:
    raw: dict[str, str] = {}
    config_file = environ.get(PREFIX + "CONFIG")
    if config_file:
        data = tomllib.loads(Path(config_file).read_text())
        raw.update({str(k).lower(): str(v) for k, v in data.items()})
    for item in fields(Settings):
        value = environ.get(env_name(item.name))
        if value is not None and value != "":
            raw[item.name] = value
    return raw


def _convert(name: str, kind: object, text: str) -> object:
    if kind in ("int", int):
        return int(text)
    if kind in ("float", float):
        value = float(text)
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if kind in ("bool", bool):
        lowered = text.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("must be true or false")
        return lowered in ("1", "true", "yes", "on")
    if name in _URL_SCHEMES:
        parsed = urlparse(text)
        if parsed.scheme not in _URL_SCHEMES[name]:
            allowed = ", ".join(_URL_SCHEMES[name])
            raise ValueError(f"must be a URL with scheme {allowed}")
        if parsed.scheme != "unix" and not parsed.netloc and name != "database_url":
            raise ValueError("must name a host")
    return text


def load_settings(
    environ: Mapping[str, str] | None = None, required: tuple[str, ...] = REQUIRED
) -> Settings:
    """Reads and checks every setting; raises ConfigError listing each problem.
    `required` names the settings this command cannot run without."""
    env = os.environ if environ is None else environ
    try:
        raw = _raw_values(env)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{PREFIX}CONFIG: cannot read the file: {exc}"]) from exc
    problems: list[str] = []
    values: dict[str, object] = {}
    for item in fields(Settings):
        if item.name not in raw:
            if item.name in required:
                problems.append(f"{env_name(item.name)}: missing")
            continue
        try:
            values[item.name] = _convert(item.name, item.type, raw[item.name])
        except ValueError as exc:
            problems.append(f"{env_name(item.name)}: invalid ({exc})")
    port = values.get("port")
    if isinstance(port, int) and not 0 <= port <= 65535:
        problems.append(f"{env_name('port')}: invalid (must be 0-65535)")
    issuer = values.get("invoice_issuer")
    if isinstance(issuer, str) and not (issuer.isascii() and issuer.isalnum()
                                        and 1 <= len(issuer) <= 16):
        problems.append(f"{env_name('invoice_issuer')}: invalid (1-16 letters or digits)")
    report = values.get("usage_report_s")
    if isinstance(report, float) and not MIN_USAGE_REPORT_S <= report <= MAX_USAGE_REPORT_S:
        problems.append(f"{env_name('usage_report_s')}: invalid (must be "
                        f"{MIN_USAGE_REPORT_S:g}-{MAX_USAGE_REPORT_S:g} seconds)")
    for name in ("idle_timeout_s", "header_timeout_s"):
        if values.get(name) == 0:
            problems.append(f"{env_name(name)}: invalid (must be more than 0)")
    for name in ("call_cpu_limit", "call_lag_limit_ms"):
        limit = values.get(name)
        if isinstance(limit, float) and not limit > 0:
            problems.append(f"{env_name(name)}: invalid (must be more than 0)")
    cap = values.get("max_connections_per_ip")
    if isinstance(cap, int) and cap < 0:
        problems.append(f"{env_name('max_connections_per_ip')}: invalid (0 for no cap, or more)")
    token = values.get("admin_token")
    if isinstance(token, str) and len(token) < 16 and "admin_token" in required:
        problems.append(f"{env_name('admin_token')}: invalid (must be at least 16 characters)")
    if problems:
        raise ConfigError(problems)
    return Settings(**values)  # type: ignore[arg-type]

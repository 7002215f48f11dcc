"""`voicegw dev`: the whole system on one laptop with nothing but Python.

Embedded Redis (append-only file) and PostgreSQL keep their data under the data directory
(`./.voicegw/` by default), next to `dev.json`, which remembers the generated admin token,
Twilio auth token and the demo tenant's id and API key, so a second run reuses them all:
same tenant, same credits. Any `VOICEGW_*` setting that is set is used as given; a vendor
with a real key or base URL set is used instead of its emulator. The vendor emulators
run as a child process (gateway/dev_emulators.py). While it runs, `dev.json` also holds
a `running` section with every URL and credential a tool needs (load.caller_cli and
load.message_cli read it); it is removed when `voicegw dev` stops.

Unless VOICEGW_SMTP_URL is set, mail goes to a local SMTP catcher (gateway/dev_mail.py)
whose mails are shown at `/dev/mail`; webhooks may call private addresses
(VOICEGW_WEBHOOKS_ALLOW_PRIVATE=true), so a receiver on the laptop works.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from gateway.config import ConfigError, Settings, load_settings
from gateway.dev_banner import banner, running_info
from gateway.dev_emulators import EmulatorProcess
from gateway.dev_mail import MailCatcher, add_mail_routes
from gateway.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from gateway.logs import configure_logging
from gateway.runner import install_uvloop, serve_until_stopped
from metering.migrate import migrate_url

DEMO_NUMBER = "+15550100001"
DEMO_WHATSAPP_ID = "demo-wa-phone-id"
DEMO_OWNER = "owner@demo.voicegw.test"       # signs in to /dashboard
DEMO_OPERATOR = "operator@demo.voicegw.test"  # signs in to /admin/dashboard
# The demo number's monthly fee (10,000 credits, prorated) is charged from this, and a
# demo call costs a few hundred credits: enough for a good while of trying things out.
DEMO_CREDITS = 100_000
DEMO_CREDIT_KEY = "dev-demo-credit"  # once per data directory (idempotent topup)
DEV_DATABASE = "voicegw"
PORT_SETTINGS = {"redis": "VOICEGW_DEV_REDIS_PORT", "postgres": "VOICEGW_DEV_POSTGRES_PORT"}


def _load_state(path: Path) -> dict[str, Any]:
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded
    return {}


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)  # it holds the dev admin token and the demo API key


def _forget_running(path: Path) -> None:
    state = _load_state(path)
    if state.pop("running", None) is not None:
        _save_state(path, state)


def dev_ports(env: dict[str, str]) -> dict[str, int]:
    """The embedded servers' ports from VOICEGW_DEV_*_PORT (0, unset: any free port)."""
    ports, problems = {}, []
    for server, name in PORT_SETTINGS.items():
        text = env.get(name, "").strip() or "0"
        if not text.isdigit() or int(text) > 65535:
            problems.append(f"{name}: must be a TCP port (1-65535), not {text!r}")
            continue
        ports[server] = int(text)
    if problems:
        raise ConfigError(problems)
    return ports


def run_dev(data_dir: str) -> int:
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    state_path = data / "dev.json"
    state = _load_state(state_path)
    state.pop("running", None)  # left by a killed run
    state.setdefault("admin_token", "dev_" + secrets.token_urlsafe(24))
    state.setdefault("twilio_auth_token", secrets.token_hex(16))
    state.setdefault("twilio_account_sid", "AC" + secrets.token_hex(16))
    _save_state(state_path, state)

    configure_logging(os.environ.get("VOICEGW_LOG_LEVEL", "INFO"), secrets=[state["admin_token"]])
    stops: list[Callable[[], None]] = []
    try:
        env = dict(os.environ)
        try:
            emulators = _start_servers(data, env, state, stops)
        except RuntimeError as exc:
            print(f"voicegw dev: {exc}")
            return 1
        vendors = _emulated_vendors(env, emulators)
        catch_mail = not env.get("VOICEGW_SMTP_URL")
        settings = _dev_settings(_dev_values(env, state, vendors))
        install_uvloop()
        asyncio.run(_dev_main(settings, state, state_path, emulators,
                              sorted(vendors_emulated(vendors)), catch_mail=catch_mail))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"voicegw dev: {problem}")
        return 2
    finally:
        for stop in reversed(stops):
            stop()
        _forget_running(state_path)
    return 0


def _start_servers(data: Path, env: dict[str, str], state: dict[str, Any],
                   stops: list[Callable[[], None]]) -> dict[str, str]:
    """Embedded Redis and PostgreSQL (unless their URLs are set) and the emulators; fills
    `env` with the servers' URLs and returns the emulators' base URLs."""
    ports = dev_ports(env)
    if not env.get("VOICEGW_REDIS_URL"):
        redis = EmbeddedRedis(data / "redis", port=ports["redis"])
        stops.append(redis.stop)
        env["VOICEGW_REDIS_URL"] = redis.start()
    if not env.get("VOICEGW_DATABASE_URL"):
        postgres = EmbeddedPostgres(data / "postgres", port=ports["postgres"])
        stops.append(postgres.stop)
        server_url = postgres.start()
        env["VOICEGW_DATABASE_URL"] = asyncio.run(_ensure_database(server_url))
    values = _dev_values(env, state, {})
    emulators = EmulatorProcess(data / "emulators.log")
    stops.append(emulators.stop)
    return emulators.start({**os.environ, **{name: values[name] for name in (
        "VOICEGW_TWILIO_ACCOUNT_SID", "VOICEGW_TWILIO_AUTH_TOKEN",
        "VOICEGW_WHATSAPP_ACCESS_TOKEN")}})


async def _ensure_database(server_url: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DEV_DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    finally:
        await conn.close()
    return server_url.rsplit("/", 1)[0] + "/" + DEV_DATABASE


def _dev_values(env: dict[str, str], state: dict[str, Any],
               vendors: dict[str, str]) -> dict[str, str]:
    defaults = {
        "VOICEGW_ADMIN_TOKEN": state["admin_token"],
        "VOICEGW_TWILIO_AUTH_TOKEN": state["twilio_auth_token"],
        "VOICEGW_TWILIO_ACCOUNT_SID": state["twilio_account_sid"],
        "VOICEGW_HOST": "127.0.0.1",
        "VOICEGW_PORT": "8080",
        "VOICEGW_WHATSAPP_APP_SECRET": "dev-whatsapp-app-secret",
        "VOICEGW_WHATSAPP_VERIFY_TOKEN": "dev-whatsapp-verify-token",
        "VOICEGW_WHATSAPP_ACCESS_TOKEN": "dev-whatsapp-access-token",
        "VOICEGW_WEBHOOKS_ALLOW_PRIVATE": "true",
        "VOICEGW_MAIL_FROM": "voicegw dev <dev@voicegw.localhost>",
        "VOICEGW_SECURE_COOKIES": "false",  # plain HTTP on the laptop
    }
    return {**defaults, **vendors, **{k: v for k, v in env.items() if v}}


def _dev_settings(merged: dict[str, str]) -> Settings:
    if merged["VOICEGW_PORT"] == "0":  # any free port, chosen now so PUBLIC_URL can name it
        merged["VOICEGW_PORT"] = str(free_port())
    if "VOICEGW_SMTP_URL" not in merged:  # the mail catcher's port, chosen now
        merged["VOICEGW_SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    if "VOICEGW_PUBLIC_URL" not in merged:
        merged["VOICEGW_PUBLIC_URL"] = f"http://127.0.0.1:{merged['VOICEGW_PORT']}"
    return load_settings(merged)


async def _dev_main(settings: Settings, state: dict[str, Any], state_path: Path,
                    emulators: dict[str, str], emulated: list[str], *,
                    catch_mail: bool = True) -> None:
    await migrate_url(settings.database_url)
    catcher = MailCatcher()
    if catch_mail:
        await catcher.start("127.0.0.1", urlsplit(settings.smtp_url).port or 25)

    async def on_started(app: web.Application, port: int) -> None:
        await _ensure_demo_tenant(app, state, state_path)
        state["running"] = running_info(settings, port, state, emulators,
                                        demo_number=DEMO_NUMBER,
                                        whatsapp_id=DEMO_WHATSAPP_ID,
                                        demo_owner=DEMO_OWNER, demo_operator=DEMO_OPERATOR)
        if catch_mail:
            state["running"]["mail_url"] = f"http://{settings.host}:{port}/dev/mail"
        _save_state(state_path, state)
        print(banner(state["running"], emulated), flush=True)
        if catch_mail:
            print(f"  caught mail:  {state['running']['mail_url']}", flush=True)

    try:
        await serve_until_stopped(
            settings, on_started=on_started,
            configure=(lambda app: add_mail_routes(app, catcher)) if catch_mail else None)
    finally:
        await catcher.stop()


async def _ensure_demo_people(pool: asyncpg.Pool, tenant_id: uuid.UUID, state: dict[str, Any],
                              path: Path) -> None:
    """The demo tenant's owner and an operator, with one password kept in dev.json: the
    dashboards are entered by signing in (docs/accounts.md), and a laptop has no mailbox
    to receive an invite link (the dev mail page shows them, but a first run should not
    need one)."""
    from metering.accounts.users import ensure_user

    if "demo_password" not in state:
        state["demo_password"] = secrets.token_urlsafe(12)
        _save_state(path, state)
    await ensure_user(pool, tenant_id=tenant_id, email=DEMO_OWNER, role="owner",
                      password=state["demo_password"])
    await ensure_user(pool, tenant_id=None, email=DEMO_OPERATOR, role="operator",
                      password=state["demo_password"])


_VENDOR_SETTINGS = {
    "openai": ("VOICEGW_OPENAI_API_KEY", "VOICEGW_OPENAI_BASE_URL"),
    "elevenlabs": ("VOICEGW_ELEVENLABS_API_KEY", "VOICEGW_ELEVENLABS_BASE_URL"),
    "twilio": ("VOICEGW_TWILIO_AUTH_TOKEN", "VOICEGW_TWILIO_API_BASE"),
    "graph": ("VOICEGW_WHATSAPP_ACCESS_TOKEN", "VOICEGW_GRAPH_API_BASE"),
}


def _emulated_vendors(env: dict[str, str], base_urls: dict[str, str]) -> dict[str, str]:
    """Base URLs (and placeholder keys) for each vendor with neither key nor URL set.

    For Twilio the auth token is also what signs our own webhooks, so only a real API
    base URL replaces its emulator."""
    chosen: dict[str, str] = {}
    for vendor, (key_var, url_var) in _VENDOR_SETTINGS.items():
        has_key = bool(env.get(key_var)) and vendor != "twilio"
        if has_key or env.get(url_var):
            continue
        chosen[url_var] = base_urls[vendor]
        if vendor in ("openai", "elevenlabs"):
            chosen[key_var] = f"emulator-{vendor}-key"
    return chosen


def vendors_emulated(vendors: dict[str, str]) -> set[str]:
    return {v for v, (_, url_var) in _VENDOR_SETTINGS.items() if url_var in vendors}


async def _ensure_demo_tenant(app: web.Application, state: dict[str, Any], path: Path) -> None:
    from api.context import CREDIT_STORE, PG_POOL
    from metering.number_fees import charge_number_fees
    from metering.ratecard import default_rate_card
    from metering.tenants import PhoneNumber, add_number, create_tenant, get_tenant
    from metering.topups import topup

    pool = app[PG_POOL]
    tenant_id = uuid.UUID(state["demo_tenant_id"]) if "demo_tenant_id" in state else None
    if tenant_id is None or await get_tenant(pool, tenant_id) is None:
        created = await create_tenant(pool, "Demo Dental Clinic")
        tenant_id = created.id
        state["demo_tenant_id"] = str(created.id)
        state["demo_api_key"] = created.api_key
        await add_number(pool, PhoneNumber(DEMO_NUMBER, tenant_id, "local", DEMO_WHATSAPP_ID,
                                           "+15550100099"))
        _save_state(path, state)
    await _ensure_demo_people(pool, tenant_id, state, path)
    await topup(pool, app[CREDIT_STORE], tenant_id=tenant_id,
                idempotency_key=DEMO_CREDIT_KEY, credits=DEMO_CREDITS,
                reference="voicegw dev demo credit")
    now = dt.datetime.now(dt.UTC)  # the demo number's fee, as the admin API charges it
    await charge_number_fees(pool, app[CREDIT_STORE], default_rate_card(), now.date(),
                             int(now.timestamp() * 1000), tenant=str(tenant_id))

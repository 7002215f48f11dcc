"""What `voicegw dev` tells its user: every URL and credential a tool needs (also kept in
`dev.json` under `running`), and copy-paste commands that place a demo call and send a
WhatsApp message and an SMS with the load tools, all values filled in."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gateway.config import Settings

DEMO_CALLER = "+15557654321"
DEMO_SAY = "I would like to book an appointment tomorrow at 3pm"
DEMO_WHATSAPP_TEXT = "Hello! What are your opening hours?"
DEMO_SMS_TEXT = "Hi, can I book a cleaning next week?"


def running_info(settings: Settings, port: int, state: dict[str, Any],
                 emulators: dict[str, str], *, demo_number: str,
                 whatsapp_id: str, demo_owner: str, demo_operator: str) -> dict[str, Any]:
    """The `running` section of dev.json."""
    return {
        "pid": os.getpid(),
        "gateway_url": f"http://{settings.host}:{port}",
        "public_url": settings.public_url,
        "redis_url": settings.redis_url,
        "database_url": settings.database_url,
        "emulators_url": emulators["emulator"],
        "emulators": {k: v for k, v in sorted(emulators.items()) if k != "emulator"},
        "admin_token": settings.admin_token,
        "twilio_account_sid": settings.twilio_account_sid,
        "twilio_auth_token": settings.twilio_auth_token,
        "whatsapp_app_secret": settings.whatsapp_app_secret,
        "whatsapp_phone_number_id": whatsapp_id,
        "demo_tenant_id": state["demo_tenant_id"],
        "demo_api_key": state["demo_api_key"],
        "demo_number": demo_number,
        "demo_owner": demo_owner,
        "demo_operator": demo_operator,
        "demo_password": state["demo_password"],
    }


def _python() -> str:
    """The interpreter running us, by its absolute path: the commands work when pasted in
    any directory (a relative `.venv/bin/python` would only work beside the venv)."""
    return str(Path(sys.executable).absolute())


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def commands(info: dict[str, Any]) -> dict[str, str]:
    """The demo call, WhatsApp message and SMS, as shell commands."""
    python = _python()
    public = ([] if info["public_url"].rstrip("/") == info["gateway_url"]
              else ["--public-url", info["public_url"]])
    twilio = ["--auth-token", info["twilio_auth_token"],
              "--account-sid", info["twilio_account_sid"]]
    common = ["--gateway", info["gateway_url"], *public]
    return {
        "call": shlex.join([
            python, "-m", "load.caller_cli", *common, *twilio, "--to", info["demo_number"],
            "--from", DEMO_CALLER, "--api-key", info["demo_api_key"],
            "--emulators", info["emulators_url"], "--say", DEMO_SAY]),
        "whatsapp": shlex.join([
            python, "-m", "load.message_cli", "whatsapp", *common,
            "--app-secret", info["whatsapp_app_secret"],
            "--phone-number-id", info["whatsapp_phone_number_id"],
            "--emulators", info["emulators_url"], "--text", DEMO_WHATSAPP_TEXT]),
        "sms": shlex.join([
            python, "-m", "load.message_cli", "sms", *common, *twilio,
            "--to", info["demo_number"], "--emulators", info["emulators_url"],
            "--text", DEMO_SMS_TEXT]),
        "balance": shlex.join([
            "curl", "-s", info["gateway_url"] + "/v1/balance",
            "-H", f"Authorization: Bearer {info['demo_api_key']}"]),
    }


def banner(info: dict[str, Any], emulated: list[str]) -> str:
    base = info["gateway_url"]
    vendors = "  ".join(f"{k} {v}" for k, v in info["emulators"].items())
    try_it = commands(info)
    lines = [
        "",
        "voicegw dev is running (Ctrl-C stops everything it started)",
        f"  gateway         {base}",
        f"  health          {base}/readyz",
        f"  metrics         {base}/metrics",
        f"  dashboard       {base}/dashboard",
        f"  operator page   {base}/admin/dashboard",
        f"  sign in         {base}/login",
        f"  public URL      {info['public_url']}",
        f"  emulators       {info['emulators_url']}",
        f"  emulated        {', '.join(emulated) or 'none (real vendors configured)'}",
        f"  vendor URLs     {vendors}",
        f"  redis           {_without_password(info['redis_url'])}",
        f"  postgres        {_without_password(info['database_url'])}",
        f"  admin token     {info['admin_token']}",
        f"  twilio SID      {info['twilio_account_sid']}",
        f"  twilio token    {info['twilio_auth_token']}",
        f"  demo tenant     {info['demo_tenant_id']}",
        f"  demo API key    {info['demo_api_key']}",
        f"  demo number     {info['demo_number']}",
        f"  demo owner      {info['demo_owner']}",
        f"  demo operator   {info['demo_operator']}",
        f"  demo password   {info['demo_password']}",
        f"  WhatsApp id     {info['whatsapp_phone_number_id']}",
        "  (all of it is in the data directory's dev.json, under \"running\")",
        "",
        "Try it:",
        "  # the balance",
        f"  {try_it['balance']}",
        "  # a demo phone call (the caller speaks, the agent books, the record shows the cost)",
        f"  {try_it['call']}",
        "  # a WhatsApp message and its reply",
        f"  {try_it['whatsapp']}",
        "  # an SMS and its reply",
        f"  {try_it['sms']}",
        "",
    ]
    return "\n".join(lines)

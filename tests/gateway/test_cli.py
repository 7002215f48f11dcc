"""The command line as a user meets it: help everywhere, settings problems named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.cli import build_parser


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True, text=True, env=clean, timeout=60, check=False,
    )


def test_serve_without_settings_names_each_missing_variable() -> None:
    result = _run("serve")
    assert result.returncode == 2
    for name in ("VOICEGW_REDIS_URL", "VOICEGW_DATABASE_URL", "VOICEGW_PUBLIC_URL",
                 "VOICEGW_ADMIN_TOKEN"):
        assert f"{name}: missing" in result.stderr


def test_migrate_without_database_url_is_a_config_error() -> None:
    result = _run("migrate")
    assert result.returncode == 2
    assert "VOICEGW_DATABASE_URL: missing" in result.stderr


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["dev"], ["migrate"], ["sink"], ["reconcile"], ["review"],
                ["followups"]]
)
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: voicegw" in capsys.readouterr().out


def test_metering_commands_need_only_the_stores() -> None:
    for command in ("sink", "reconcile"):
        result = _run(command)
        assert result.returncode == 2
        assert "VOICEGW_REDIS_URL: missing" in result.stderr
        assert "VOICEGW_DATABASE_URL: missing" in result.stderr
        assert "VOICEGW_ADMIN_TOKEN" not in result.stderr

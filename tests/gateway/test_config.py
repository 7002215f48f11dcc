"""Settings: every missing or invalid variable is named, once, in one report."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings

VALID = {
    "VOICEGW_REDIS_URL": "redis://127.0.0.1:6379/0",
    "VOICEGW_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "VOICEGW_PUBLIC_URL": "https://gw.example.com",
    "VOICEGW_ADMIN_TOKEN": "a-long-enough-admin-token",
}


def test_defaults_and_types() -> None:
    settings = load_settings({**VALID, "VOICEGW_PORT": "9000", "VOICEGW_RUN_SINK": "false"})
    assert settings.port == 9000
    assert settings.run_sink is False
    assert settings.host == "0.0.0.0"
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.usage_report_s == 5.0
    assert (settings.idle_timeout_s, settings.header_timeout_s,
            settings.max_connections_per_ip) == (75.0, 10.0, 256)


def test_every_missing_required_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert caught.value.problems == [
        "VOICEGW_REDIS_URL: missing",
        "VOICEGW_DATABASE_URL: missing",
        "VOICEGW_PUBLIC_URL: missing",
        "VOICEGW_ADMIN_TOKEN: missing",
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("VOICEGW_PORT", "eighty", "VOICEGW_PORT: invalid"),
        ("VOICEGW_PORT", "70000", "VOICEGW_PORT: invalid (must be 0-65535)"),
        ("VOICEGW_REDIS_URL", "http://x", "VOICEGW_REDIS_URL: invalid (must be a URL with scheme"),
        ("VOICEGW_PUBLIC_URL", "gw.example.com", "VOICEGW_PUBLIC_URL: invalid"),
        ("VOICEGW_ADMIN_TOKEN", "short", "VOICEGW_ADMIN_TOKEN: invalid (must be at least 16"),
        ("VOICEGW_RUN_SINK", "maybe", "VOICEGW_RUN_SINK: invalid (must be true or false)"),
        ("VOICEGW_SHUTDOWN_GRACE_S", "-1", "VOICEGW_SHUTDOWN_GRACE_S: invalid"),
        ("VOICEGW_USAGE_REPORT_S", "0", "VOICEGW_USAGE_REPORT_S: invalid (must be 0.5-60"),
        ("VOICEGW_USAGE_REPORT_S", "61", "VOICEGW_USAGE_REPORT_S: invalid (must be 0.5-60"),
        ("VOICEGW_IDLE_TIMEOUT_S", "0", "VOICEGW_IDLE_TIMEOUT_S: invalid (must be more than 0)"),
        ("VOICEGW_HEADER_TIMEOUT_S", "0", "VOICEGW_HEADER_TIMEOUT_S: invalid (must be more"),
        ("VOICEGW_MAX_CONNECTIONS_PER_IP", "-1", "VOICEGW_MAX_CONNECTIONS_PER_IP: invalid"),
    ],
)
def test_invalid_values_are_named(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**VALID, name: value})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(expected)


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "voicegw.toml"
    config.write_text('port = 7000\nhost = "127.0.0.1"\nlog_level = "DEBUG"\n')
    settings = load_settings({**VALID, "VOICEGW_CONFIG": str(config), "VOICEGW_PORT": "7001"})
    assert settings.port == 7001
    assert settings.host == "127.0.0.1"
    assert settings.log_level == "DEBUG"


def test_unreadable_config_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**VALID, "VOICEGW_CONFIG": str(tmp_path / "absent.toml")})
    assert caught.value.problems[0].startswith("VOICEGW_CONFIG: cannot read the file")


def test_redacted_hides_secrets() -> None:
    settings = load_settings({**VALID, "VOICEGW_OPENAI_API_KEY": "sk-supersecretvalue123"})
    shown = settings.redacted()
    assert "supersecret" not in str(shown)
    assert shown["admin_token"].endswith("…")
    assert shown["redis_url"] == VALID["VOICEGW_REDIS_URL"]

"""``scv config``: the generated reference stays in sync, secrets never reach the output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scv.cli import config_markdown, main
from scv.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]
CONFIG_DOC = REPO / "docs" / "configuration.md"


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings()`` is cached per process; re-read the environment around a test."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_configuration_doc_is_generated_from_settings() -> None:
    assert CONFIG_DOC.read_text() == config_markdown(), (
        "docs/configuration.md is stale: run `.venv/bin/scv config --markdown > "
        "docs/configuration.md`"
    )


def test_markdown_lists_every_setting_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == config_markdown()
    rows = [line for line in out.splitlines() if line.startswith("| `SCV_")]
    assert [row.split("`")[1] for row in rows] == [
        f"SCV_{name.upper()}" for name in Settings.model_fields
    ]
    assert "| `SCV_WEB_PORT` | `6066` |" in out


def test_markdown_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    expected = config_markdown()
    monkeypatch.setenv("SCV_WEB_PORT", "7777")
    monkeypatch.setenv("SCV_BOOTSTRAP_SERVERS", "kafka.internal:9093")
    assert config_markdown() == expected


def test_config_masks_the_sasl_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    secret = "s3cr3t-Passw0rd-do-not-print"
    monkeypatch.setenv("SCV_SASL_USERNAME", "svc-scv")
    monkeypatch.setenv("SCV_SASL_PASSWORD", secret)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert secret not in out
    password_line = next(line for line in out.splitlines() if "SCV_SASL_PASSWORD" in line)
    assert "********" in password_line
    assert "svc-scv" in out  # the environment was read: only the secret is hidden


def test_config_masks_every_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    secrets = {
        "SCV_SASL_PASSWORD": "sasl-secret-1",
        "SCV_SSL_KEY_PASSWORD": "key-secret-2",
        "SCV_API_TOKEN": "token-secret-3",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in secrets)
    assert [v for v in secrets.values() if v in out] == []

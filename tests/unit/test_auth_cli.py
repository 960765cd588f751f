"""Entry points and authentication settings: production refuses weak setups; the demo is open."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from typer.testing import CliRunner

from marketpulse import cli
from marketpulse.config import Settings

runner = CliRunner()


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "JWT_SECRET"),
        ({"JWT_SECRET": "too-short"}, "JWT_SECRET"),
        ({"JWT_SECRET": "x" * 40, "AUTH_ENABLED": "false"}, "AUTH_ENABLED"),
    ],
)
def test_serve_refuses_to_start_in_production_with_weak_auth_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("AUTH_ENABLED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(cli.app, ["serve"])
    assert result.exit_code == 1
    assert "invalid settings" in result.output and complaint in result.output


def _demo(monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    """The settings ``marketpulse demo`` would start with, and what it printed."""
    started: list[Settings] = []

    def fake_run(settings: Settings, roles: Any, *, banner: bool) -> None:
        started.append(settings)

    monkeypatch.setattr(cli, "_run", fake_run)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the CLI reconfigures logging onto the runner's streams; put it back afterwards
        result = runner.invoke(cli.app, ["demo"])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    return started[0], result.output


def test_demo_turns_auth_off_and_says_so_unless_the_environment_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTH_ENABLED", raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    settings, output = _demo(monkeypatch)
    assert settings.auth_enabled is False
    assert "authentication is OFF in the demo" in output
    monkeypatch.setenv("AUTH_ENABLED", "true")
    settings, output = _demo(monkeypatch)
    assert settings.auth_enabled is True
    assert "authentication is OFF" not in output

"""The command line: help texts and errors a user sees before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "ingest", "store", "api", "db"):
        assert command in result.output


@pytest.mark.parametrize("command", [["demo"], ["serve"], ["db", "upgrade"]])
def test_each_command_explains_itself(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) > 3


def test_unknown_role_is_a_clear_error() -> None:
    result = runner.invoke(app, ["serve", "--roles", "ingest,cooking"])
    assert result.exit_code == 1
    assert "roles are ingest, store and api" in result.output


def test_invalid_setting_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "not-a-port")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1
    assert "invalid settings: API_PORT" in result.output


def test_a_service_that_cannot_start_is_a_clear_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("FEEDS", "sim")
    monkeypatch.setenv("SUBSCRIBE", "NOSUCH.NSE")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    result = runner.invoke(app, ["serve", "--roles", "ingest"])
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "Traceback" not in result.output

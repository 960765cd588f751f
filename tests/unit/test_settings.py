"""Settings: environment parsing and the README table that documents them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from marketpulse.config import Settings, redact_url

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme_table() -> None:
    text = README.read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert missing == []


def test_feeds_accepts_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDS", "sim, kite ,")
    assert Settings().feeds == ["sim", "kite"]


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "DATABASE_URL", "API_PORT", "TICK_BUFFER_SIZE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url is None and settings.database_url is None
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert (settings.tick_buffer_size, settings.flush_interval_seconds) == (10_000, 1.0)
    assert settings.firehose_key(3) == "{mp}:ticks:3"
    assert settings.snapshot_key("RELIANCE.NSE", "full") == "market:{RELIANCE.NSE}:full"
    assert settings.symbol_stream_key("RELIANCE.NSE") == "market_data_stream:{RELIANCE.NSE}"
    assert settings.redis_cluster == "auto" and settings.cluster_mode is None


@pytest.mark.parametrize(("name", "value"), [("API_PORT", "70000"), ("TICK_BUFFER_SIZE", "0")])
def test_out_of_range_values_are_rejected_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_symbols_file_adds_its_enabled_symbols_to_subscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "symbols.csv"
    csv.write_text("symbol_name,enabled\nRELIANCE.NSE,true\nINFY.NSE,false\nTCS.NSE,1\n\n")
    monkeypatch.setenv("SUBSCRIBE", "SBIN.NSE,TCS.NSE")
    monkeypatch.setenv("SYMBOLS_FILE", str(csv))
    assert Settings().subscribe == ["SBIN.NSE", "TCS.NSE", "RELIANCE.NSE"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,on\nX.NSE,true\n", "header must have columns symbol_name,enabled"),
        ("symbol_name,enabled\nX.NSE,maybe\n", r"symbols.csv:2: enabled must be true or false"),
    ],
)
def test_a_bad_symbols_file_names_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    csv = tmp_path / "symbols.csv"
    csv.write_text(content)
    monkeypatch.setenv("SYMBOLS_FILE", str(csv))
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_a_missing_symbols_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS_FILE", "/nonexistent/symbols.csv")
    with pytest.raises(ValidationError, match="cannot read SYMBOLS_FILE"):
        Settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://postgres@127.0.0.1/db", "postgresql://postgres@127.0.0.1/db"),
    ],
)
def test_urls_in_messages_never_show_a_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown

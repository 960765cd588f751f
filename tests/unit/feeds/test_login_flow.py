"""The steps every ``marketpulse login <broker>`` shares: prompts, exits and messages."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import typer
from rich.console import Console

from marketpulse.credentials import CredentialStore
from marketpulse.feeds import login_flow
from marketpulse.feeds.login_flow import (
    ask_for_redirect,
    exit_on,
    expiry_text,
    given_or_prompt,
    load_settings,
    note_env_overrides,
    post_for_tokens,
    save_or_exit,
)
from marketpulse.feeds.simulator.trading_calendar import IST

NOON_IST = datetime(2026, 3, 2, 12, 34, 56, tzinfo=IST).timestamp()


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=400, highlight=False), out


def no_prompt(label: str, **_: object) -> str:
    raise AssertionError(f"prompted for {label!r}")


def test_the_first_given_value_wins_and_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_flow.typer, "prompt", no_prompt)
    assert given_or_prompt("Kite api_key", None, "", "saved", "env") == "saved"


def test_without_a_value_the_prompt_asks_hiding_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, object]] = []

    def prompt(label: str, hide_input: bool = False) -> str:
        asked.append((label, hide_input))
        return "typed"

    monkeypatch.setattr(login_flow.typer, "prompt", prompt)
    assert given_or_prompt("Kite api_secret", None, "", hide_input=True) == "typed"
    assert asked == [("Kite api_secret", True)]


def test_invalid_settings_exit_1_with_pydantics_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ACCESS_TTL_SECONDS", "zero")
    shown, out = console()
    with pytest.raises(typer.Exit) as exited:
        load_settings(shown)
    assert exited.value.exit_code == 1
    assert "error: invalid settings:" in out.getvalue()
    assert "jwt_access_ttl_seconds" in out.getvalue()


def test_a_given_redirect_skips_the_hint_and_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_flow.typer, "prompt", no_prompt)
    shown, out = console()
    got = ask_for_redirect(shown, "Kite", "https://l.example/x", "tok", hint="H", prompt="P")
    assert got == "tok"
    assert out.getvalue() == "Kite login page:\n  https://l.example/x\n"


def test_a_missing_redirect_is_asked_for_after_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_flow.typer, "prompt", lambda label, hide_input=False: f"<{label}>")
    shown, out = console()
    got = ask_for_redirect(shown, "Fyers", "https://l/x", None, hint="Paste it.", prompt="URL")
    assert got == "<URL>"
    assert out.getvalue().endswith("https://l/x\nPaste it.\n")


def test_the_named_errors_become_exit_1_and_others_pass() -> None:
    shown, out = console()
    with pytest.raises(typer.Exit) as exited, exit_on(shown, LookupError):
        raise KeyError("no such token")
    assert exited.value.exit_code == 1
    assert out.getvalue() == "error: 'no such token'\n"
    with pytest.raises(ValueError, match="other"), exit_on(shown, LookupError):
        raise ValueError("other")


def test_a_failed_save_exits_1_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the directory should be")
    store = CredentialStore(tmp_path / "home" / "credentials.json", env={})
    shown, out = console()
    with pytest.raises(typer.Exit) as exited:
        save_or_exit(shown, store, "kite", {"access_token": "t"}, None)
    assert exited.value.exit_code == 1
    assert f"error: cannot save the credentials to {store.path}: " in out.getvalue()


def test_a_save_writes_the_values_with_their_expiry(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path, env={})
    shown, out = console()
    save_or_exit(shown, store, "dhan", {"client_id": "C1"}, 2e9)
    assert store.entry("dhan").values == {"client_id": "C1"}
    assert store.entry("dhan").expires_at == 2e9
    assert out.getvalue() == ""


def test_expiries_read_as_ist_wall_clock() -> None:
    assert expiry_text(NOON_IST) == "2026-03-02 12:34 IST"
    assert expiry_text(NOON_IST, seconds=True) == "2026-03-02 12:34:56 IST"
    assert expiry_text(None) == "unknown"


def test_one_token_variable_gets_the_singular_note(monkeypatch: pytest.MonkeyPatch) -> None:
    shown, out = console()
    monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
    note_env_overrides(shown, ["KITE_ACCESS_TOKEN"])
    assert out.getvalue() == ""
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "x")
    note_env_overrides(shown, ["KITE_ACCESS_TOKEN"])
    assert out.getvalue() == (
        "note: KITE_ACCESS_TOKEN is set in the environment and overrides the saved token; "
        "unset it to use this login.\n"
    )


def test_several_token_variables_list_those_set(monkeypatch: pytest.MonkeyPatch) -> None:
    shown, out = console()
    monkeypatch.delenv("A_TOKEN", raising=False)
    monkeypatch.setenv("B_TOKEN", "x")
    note_env_overrides(shown, ["A_TOKEN", "B_TOKEN"])
    assert out.getvalue() == (
        "note: B_TOKEN set in the environment override the saved tokens; unset them to use "
        "this login.\n"
    )


class BrokerLoginError(Exception):
    pass


def test_the_token_request_is_posted_and_any_answer_returned() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(403, json={"status": "error"})

    response = post_for_tokens(
        "https://api.example/session/token", error=BrokerLoginError, url_setting="X_API_URL",
        timeout=1.0, transport=httpx.MockTransport(answer), data={"a": "1"},
        headers={"X-Version": "3"},
    )  # fmt: skip
    assert response.status_code == 403
    assert seen[0].content == b"a=1"
    assert seen[0].headers["X-Version"] == "3"


def test_an_unreachable_token_endpoint_names_the_url_and_setting() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BrokerLoginError, match=r"cannot reach https://api\.example/t .*X_API_URL"):
        post_for_tokens(
            "https://api.example/t", error=BrokerLoginError, url_setting="X_API_URL",
            timeout=1.0, transport=httpx.MockTransport(refuse), json={"code": "c"},
        )  # fmt: skip

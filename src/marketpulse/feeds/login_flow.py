"""The steps every ``marketpulse login <broker>`` command takes, written once.

Each broker's ``auth.login_cli`` knows its own exchange (request token, auth code, TOTP, a pasted
token); around it they all load the settings, ask for what was not given, reach the broker's
token endpoint, save the tokens with their expiry and say until when they are valid. Doing
those steps here keeps the messages and exit codes the same for every broker, which the login
tests and users' scripts rely on. Each step prints on the broker's own console, so a broker's
highlighting choice is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.feeds.simulator.trading_calendar import IST


def load_settings(console: Console) -> Settings:
    """The settings, or exit 1 with pydantic's account of what is wrong with them."""
    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[bold red]error:[/] invalid settings: {exc}")
        raise typer.Exit(1) from exc


def given_or_prompt(label: str, *candidates: str | None, hide_input: bool = False) -> str:
    """The first non-empty candidate (option, saved value, environment), else what is typed.

    Candidates come in the caller's order of precedence; the prompt only appears when none is
    set, so a scripted login with everything given never waits on the terminal.
    """
    for value in candidates:
        if value:
            return value
    typed: str = typer.prompt(label, hide_input=hide_input)
    return typed


def ask_for_redirect(
    console: Console, broker: str, url: str, given: str | None, *, hint: str, prompt: str
) -> str:
    """Show the broker's login page; return ``given`` or the redirect address the user pastes.

    ``hint`` is printed before the prompt only, as it tells what to paste.
    """
    console.print(f"{broker} login page:\n  {url}", soft_wrap=True)
    if given:
        return given
    console.print(hint)
    return given_or_prompt(prompt)


def post_for_tokens(
    url: str,
    *,
    error: type[Exception],
    url_setting: str,
    timeout: float,
    transport: httpx.BaseTransport | None,
    json: object = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST to a broker's token endpoint; an unreachable one raises ``error`` naming the URL.

    Whatever the broker answered is returned as it is: each broker reads its own reply shape.
    ``url_setting`` is the setting that chose the URL, as a wrong one is the usual cause.
    """
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            return client.post(url, json=json, data=data, headers=headers)
    except httpx.TransportError as exc:
        raise error(
            f"cannot reach {url} ({exc!r}); check the network connection (and {url_setting})"
        ) from exc


@contextmanager
def exit_on(console: Console, *errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` (the broker's login error, whose message says what to try) into exit 1."""
    try:
        yield
    except errors as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc


def save_or_exit(
    console: Console,
    store: CredentialStore,
    provider: str,
    values: Mapping[str, str],
    expires_at: float | None,
) -> None:
    """Save the provider's tokens, or exit 1 naming the file that could not be written."""
    try:
        store.save(provider, values, expires_at)
    except OSError as exc:
        console.print(f"[bold red]error:[/] cannot save the credentials to {store.path}: {exc}")
        raise typer.Exit(1) from exc


def expiry_text(expires_at: float | None, *, seconds: bool = False) -> str:
    """``expires_at`` as an IST wall-clock time for "(valid until …)"; ``unknown`` for None.

    Brokers roll tokens over at IST times (06:00, 23:59:59, midnight), so IST is what users can
    check against the broker's own documentation.
    """
    if expires_at is None:
        return "unknown"
    fmt = "%Y-%m-%d %H:%M:%S IST" if seconds else "%Y-%m-%d %H:%M IST"
    return datetime.fromtimestamp(expires_at, IST).strftime(fmt)


def note_env_overrides(console: Console, names: Sequence[str]) -> None:
    """Warn that environment variables among ``names`` win over the tokens just saved.

    Feeds read the environment before the file, so a stale variable would silently undo the
    login. A broker with one token variable gets the singular wording, one with several gets
    the list of those set.
    """
    if len(names) == 1:
        if os.environ.get(names[0]):
            console.print(
                f"[yellow]note:[/] {names[0]} is set in the environment and overrides the "
                "saved token; unset it to use this login."
            )
        return
    overriding = [name for name in names if os.environ.get(name)]
    if overriding:
        console.print(
            f"[yellow]note:[/] {', '.join(overriding)} set in the environment override the saved "
            "tokens; unset them to use this login."
        )

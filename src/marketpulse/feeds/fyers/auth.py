"""``marketpulse login fyers``: app id + secret → login URL → auth code → the day's access token.

Fyers API v3 has no headless login: the user opens ``/api/v3/generate-authcode`` in a browser,
signs in, and Fyers redirects to the app's redirect URI with ``auth_code=…``. Exchanging it at
``POST /api/v3/validate-authcode`` with ``appIdHash = sha256(app_id + ":" + secret)`` yields the
access token (a JWT). We save it with the expiry its own ``exp`` claim states, so the feed can say
"log in again" before the server refuses it (spec §1.1-§1.2).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import typer
from pydantic import ValidationError
from rich.console import Console

from marketpulse.config import Settings
from marketpulse.credentials import CredentialsError, CredentialStore
from marketpulse.feeds.fyers.credentials import PROVIDER, token_claims
from marketpulse.feeds.simulator.trading_calendar import IST

console = Console(stderr=True, highlight=False)


class FyersLoginError(Exception):
    """The login could not be completed; the message says why and what to try."""


@dataclass(frozen=True, slots=True)
class FyersSession:
    app_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float | None = None


def app_id_hash(app_id: str, secret: str) -> str:
    """Lowercase hex SHA-256 of ``app_id:secret``, as ``validate-authcode`` wants it."""
    return hashlib.sha256(f"{app_id}:{secret}".encode()).hexdigest()


def login_url(api_url: str, app_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {"client_id": app_id, "redirect_uri": redirect_uri, "response_type": "code",
         "state": state}
    )  # fmt: skip
    return f"{api_url.rstrip('/')}/api/v3/generate-authcode?{query}"


def extract_auth_code(text: str) -> str:
    """The auth_code from the redirect URL Fyers sent the browser to, or a bare code."""
    text = text.strip()
    if "auth_code=" in text or "?" in text:
        params = parse_qs(urlsplit(text).query or text.partition("?")[2] or text)
        status = params.get("s", [""])[0]
        if status and status != "ok":
            raise FyersLoginError(
                f"the redirect URL says s={status}: the login did not succeed; open the login "
                "URL and log in again"
            )
        code = params.get("auth_code", [""])[0].strip()
        if not code:
            raise FyersLoginError(
                "that URL has no auth_code; paste the whole address Fyers redirected your "
                "browser to after the login (it contains auth_code=...)"
            )
        return code
    if not text or any(c.isspace() for c in text):
        raise FyersLoginError(f"{text!r} is not an auth code; paste the redirect URL")
    return text


class _TokenReply(msgspec.Struct):
    s: str = "error"
    code: int | None = None
    message: str = ""
    access_token: str = ""
    refresh_token: str = ""


def exchange_auth_code(
    api_url: str,
    app_id: str,
    secret: str,
    auth_code: str,
    *,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> FyersSession:
    """``POST /api/v3/validate-authcode``; :class:`FyersLoginError` carries Fyers' message."""
    url = f"{api_url.rstrip('/')}/api/v3/validate-authcode"
    body = {"grant_type": "authorization_code", "appIdHash": app_id_hash(app_id, secret),
            "code": auth_code}  # fmt: skip
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(url, json=body)
    except httpx.TransportError as exc:
        raise FyersLoginError(
            f"cannot reach {url} ({exc!r}); check the network connection (and FYERS_API_URL)"
        ) from exc
    try:
        reply = msgspec.json.decode(response.content, type=_TokenReply)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise FyersLoginError(
            f"{url} answered HTTP {response.status_code} with something that is not a Fyers "
            f"reply: {response.text.strip()[:200]!r}; is FYERS_API_URL right?"
        ) from None
    if response.status_code != 200 or reply.s != "ok" or not reply.access_token:
        raise FyersLoginError(
            f"Fyers refused the login (HTTP {response.status_code}, code {reply.code}): "
            f"{reply.message or 'no message'}. An auth code works once and only for a few "
            "minutes: open the login URL again. If this keeps happening, check that the secret "
            f"(FYERS_SECRET_KEY) belongs to app {app_id!r}."
        )
    try:
        expires_at = token_claims(reply.access_token).expires_at
    except CredentialsError as exc:
        raise FyersLoginError(f"Fyers returned an unusable access token: {exc}") from None
    return FyersSession(app_id, reply.access_token, reply.refresh_token, expires_at)


def login_cli(
    auth_code: Annotated[
        str | None,
        typer.Option(
            "--auth-code",
            "-c",
            help="the auth_code, or the whole URL Fyers redirected to after the login "
            "(default: FYERS_AUTH_CODE, else prompted)",
        ),
    ] = None,
    app_id: Annotated[
        str | None, typer.Option(help="the app id, e.g. XXXXXXXXXX-100 (default: FYERS_APP_ID)")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="the app's secret key (default: FYERS_SECRET_KEY)")
    ] = None,
) -> None:
    """Log in to Fyers (API v3) and save the day's access token.

    Prints the login URL; open it, log in, and paste the address Fyers redirects your browser
    to (or just its auth_code). The token is saved under MARKETPULSE_HOME with mode 0600.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        console.print(f"[bold red]error:[/] invalid settings: {exc}")
        raise typer.Exit(1) from exc
    store = CredentialStore.in_home(settings.marketpulse_home)
    saved = store.get(PROVIDER, {"app_id": "FYERS_APP_ID"})
    app = app_id or saved.get("app_id") or typer.prompt("Fyers app id")
    key = secret or os.environ.get("FYERS_SECRET_KEY") or ""
    if not key:
        key = typer.prompt("Fyers secret key", hide_input=True)
    url = login_url(settings.fyers_api_url, app, settings.fyers_redirect_uri, secrets.token_hex(8))
    console.print(f"Fyers login page:\n  {url}", soft_wrap=True)
    raw = auth_code or os.environ.get("FYERS_AUTH_CODE") or ""
    if not raw:
        console.print("Open it, log in, then paste the address Fyers redirects your browser to.")
        raw = typer.prompt("Redirect URL or auth_code")
    try:
        session = exchange_auth_code(settings.fyers_api_url, app, key, extract_auth_code(raw))
    except FyersLoginError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    values = {"app_id": session.app_id, "access_token": session.access_token}
    if session.refresh_token:
        values["refresh_token"] = session.refresh_token
    try:
        store.save(PROVIDER, values, session.expires_at)
    except OSError as exc:
        console.print(f"[bold red]error:[/] cannot save the credentials to {store.path}: {exc}")
        raise typer.Exit(1) from exc
    until = (
        datetime.fromtimestamp(session.expires_at, IST).strftime("%Y-%m-%d %H:%M IST")
        if session.expires_at
        else "unknown"
    )
    console.print(
        f"Logged in to Fyers app {session.app_id}; access token saved to {store.path} "
        f"(valid until {until}).",
        soft_wrap=True,
    )
    if os.environ.get("FYERS_ACCESS_TOKEN"):
        console.print(
            "[yellow]note:[/] FYERS_ACCESS_TOKEN is set in the environment and overrides the "
            "saved token; unset it to use this login."
        )

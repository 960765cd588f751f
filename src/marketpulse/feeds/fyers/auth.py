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
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import typer
from rich.console import Console

from marketpulse.credentials import CredentialsError, CredentialStore
from marketpulse.feeds import login_flow
from marketpulse.feeds.fyers.credentials import PROVIDER, token_claims

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
    response = login_flow.post_for_tokens(
        url, error=FyersLoginError, url_setting="FYERS_API_URL", timeout=timeout,
        transport=transport, json=body,
    )  # fmt: skip
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
    settings = login_flow.load_settings(console)
    store = CredentialStore.in_home(settings.marketpulse_home)
    saved = store.get(PROVIDER, {"app_id": "FYERS_APP_ID"})
    app = login_flow.given_or_prompt("Fyers app id", app_id, saved.get("app_id"))
    key = login_flow.given_or_prompt(
        "Fyers secret key", secret, os.environ.get("FYERS_SECRET_KEY"), hide_input=True
    )
    url = login_url(settings.fyers_api_url, app, settings.fyers_redirect_uri, secrets.token_hex(8))
    raw = login_flow.ask_for_redirect(
        console, "Fyers", url, auth_code or os.environ.get("FYERS_AUTH_CODE"),
        hint="Open it, log in, then paste the address Fyers redirects your browser to.",
        prompt="Redirect URL or auth_code",
    )  # fmt: skip
    with login_flow.exit_on(console, FyersLoginError):
        session = exchange_auth_code(settings.fyers_api_url, app, key, extract_auth_code(raw))
    values = {"app_id": session.app_id, "access_token": session.access_token}
    if session.refresh_token:
        values["refresh_token"] = session.refresh_token
    login_flow.save_or_exit(console, store, PROVIDER, values, session.expires_at)
    console.print(
        f"Logged in to Fyers app {session.app_id}; access token saved to {store.path} "
        f"(valid until {login_flow.expiry_text(session.expires_at or None)}).",
        soft_wrap=True,
    )
    login_flow.note_env_overrides(console, ["FYERS_ACCESS_TOKEN"])

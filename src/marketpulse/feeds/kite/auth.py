"""``marketpulse login kite``: turn a browser login into the day's Kite access token.

Kite has no headless login: the user signs in at ``KITE_LOGIN_URL`` (password + 2FA) and Kite
redirects to the app's redirect URL with a single-use ``request_token``, valid for minutes.
Exchanging it at ``POST /session/token`` with ``checksum = sha256(api_key + request_token +
api_secret)`` yields the access token, which expires at 06:00 IST the next morning (SEBI's
daily session flush). We save it with that expiry, so the feed can say "log in again" instead
of failing with a bare HTTP 403 tomorrow.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Annotated, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import typer
from rich.console import Console

from marketpulse.credentials import CredentialStore
from marketpulse.feeds import login_flow
from marketpulse.feeds.kite.credentials import PROVIDER
from marketpulse.feeds.simulator.trading_calendar import IST

TOKEN_ROLLOVER: Final = clock_time(6, 0)
"""Kite access tokens stop working at this IST time every day."""

_BARE_TOKEN: Final = re.compile(r"[A-Za-z0-9]{6,128}")

console = Console(stderr=True, highlight=False)


class KiteLoginError(Exception):
    """The login could not be completed; the message says why and what to try."""


@dataclass(frozen=True, slots=True)
class KiteSession:
    """What ``/session/token`` returns that we keep."""

    api_key: str
    access_token: str = field(repr=False)
    user_id: str = ""
    public_token: str = field(default="", repr=False)


def token_expiry(now: float) -> float:
    """Epoch seconds of the first 06:00 IST strictly after epoch second ``now``.

    A login at 09:00 IST lasts until 06:00 the next day; one at 02:00 IST (after midnight, before
    the flush) only until 06:00 the same day. India has no daylight saving, so the wall-clock
    arithmetic is exact whatever the machine's own time zone.
    """
    local = datetime.fromtimestamp(now, IST)
    rollover = datetime.combine(local.date(), TOKEN_ROLLOVER, IST)
    if local >= rollover:
        rollover = datetime.combine(local.date() + timedelta(days=1), TOKEN_ROLLOVER, IST)
    return rollover.timestamp()


def login_url(login_base: str, api_key: str) -> str:
    """The browser page where the user logs in to authorise the app."""
    return f"{login_base}?{urlencode({'v': 3, 'api_key': api_key})}"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """``hex(sha256(api_key + request_token + api_secret))``, as ``/session/token`` wants it."""
    return hashlib.sha256((api_key + request_token + api_secret).encode()).hexdigest()


def extract_request_token(text: str) -> str:
    """The request_token from the redirect URL Kite sent the browser to, or a bare token."""
    text = text.strip()
    if "=" in text or "/" in text or "?" in text:
        query = urlsplit(text).query or text.partition("?")[2] or text
        params = parse_qs(query)
        status = params.get("status", [""])[0]
        if status and status != "success":
            raise KiteLoginError(
                f"the redirect URL says status={status}: the login did not succeed; "
                "open the login URL and log in again"
            )
        token = params.get("request_token", [""])[0].strip()
        if not token:
            raise KiteLoginError(
                "that URL has no request_token; paste the whole address Kite redirected your "
                "browser to after the login (it contains request_token=...)"
            )
        return token
    if not _BARE_TOKEN.fullmatch(text):
        raise KiteLoginError(
            f"{text!r} is not a request_token; paste the redirect URL or its request_token value"
        )
    return text


class _SessionData(msgspec.Struct):
    access_token: str
    user_id: str = ""
    public_token: str = ""


class _SessionReply(msgspec.Struct):
    status: str = "error"
    message: str | None = None
    error_type: str | None = None
    data: _SessionData | None = None


def exchange_request_token(
    api_url: str,
    api_key: str,
    request_token: str,
    api_secret: str,
    *,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> KiteSession:
    """``POST /session/token``; :class:`KiteLoginError` carries Kite's own error message."""
    url = f"{api_url.rstrip('/')}/session/token"
    form = {
        "api_key": api_key,
        "request_token": request_token,
        "checksum": checksum(api_key, request_token, api_secret),
    }
    response = login_flow.post_for_tokens(
        url, error=KiteLoginError, url_setting="KITE_API_URL", timeout=timeout, transport=transport,
        data=form, headers={"X-Kite-Version": "3"},
    )  # fmt: skip
    try:
        reply = msgspec.json.decode(response.content, type=_SessionReply)
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = response.text.strip()[:200]
        raise KiteLoginError(
            f"{url} answered HTTP {response.status_code} with something that is not a Kite "
            f"reply: {body!r}; is KITE_API_URL right?"
        ) from None
    if response.status_code != 200 or reply.status != "success" or reply.data is None:
        kind = reply.error_type or "error"
        raise KiteLoginError(
            f"Kite refused the login (HTTP {response.status_code}, {kind}): "
            f"{(reply.message or 'no message').rstrip('.')}. A request_token works once and only "
            "for a few "
            "minutes: open the login URL again and paste the new redirect URL. If this keeps "
            f"happening, check that the api_secret (KITE_API_SECRET) belongs to api_key "
            f"{api_key!r}."
        )
    data = reply.data
    return KiteSession(api_key, data.access_token, data.user_id, data.public_token)


def login_cli(
    request_token: Annotated[
        str | None,
        typer.Option(
            "--request-token",
            "-t",
            help="the request_token, or the whole URL Kite redirected to after the login "
            "(default: KITE_REQUEST_TOKEN, else prompted)",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="the Kite Connect app's api_key (default: KITE_API_KEY, else saved)"),
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(help="the app's api_secret (default: KITE_API_SECRET, else prompted)"),
    ] = None,
) -> None:
    """Log in to Zerodha Kite and save the day's access token (valid until 06:00 IST).

    Prints the login URL; open it, log in, and paste the address Kite redirects your browser to
    (or just its request_token). The token is saved under MARKETPULSE_HOME with mode 0600.
    """
    settings = login_flow.load_settings(console)
    store = CredentialStore.in_home(settings.marketpulse_home)
    saved = store.get(PROVIDER, {"api_key": "KITE_API_KEY"})
    key = login_flow.given_or_prompt("Kite api_key", api_key, saved.get("api_key"))
    secret = login_flow.given_or_prompt(
        "Kite api_secret", api_secret, os.environ.get("KITE_API_SECRET"), hide_input=True
    )
    raw = login_flow.ask_for_redirect(
        console, "Kite", login_url(settings.kite_login_url, key),
        request_token or os.environ.get("KITE_REQUEST_TOKEN"),
        hint="Open it, log in, then paste the address Kite redirects your browser to (or just "
        "its request_token).",
        prompt="Redirect URL or request_token",
    )  # fmt: skip
    with login_flow.exit_on(console, KiteLoginError):
        session = exchange_request_token(
            settings.kite_api_url, key, extract_request_token(raw), secret
        )
    expires_at = token_expiry(time.time())
    values = {"api_key": session.api_key, "access_token": session.access_token}
    if session.user_id:
        values["user_id"] = session.user_id
    if session.public_token:
        values["public_token"] = session.public_token
    login_flow.save_or_exit(console, store, PROVIDER, values, expires_at)
    console.print(
        f"Logged in to Kite as {session.user_id or 'unknown user'}; access token saved to "
        f"{store.path} (valid until {login_flow.expiry_text(expires_at)}).",
        soft_wrap=True,
    )
    login_flow.note_env_overrides(console, ["KITE_ACCESS_TOKEN"])

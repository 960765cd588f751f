"""``marketpulse login paytm``: turn a browser login into the day's three Paytm Money tokens.

Paytm Money has no headless login (spec §2): the user opens
``PAYTM_LOGIN_URL?apiKey=<key>&state=<nonce>``, signs in, and is redirected to the app's redirect
URL with ``requestToken=…`` (and ``state``). ``POST /accounts/v2/gettoken`` with the api key,
secret and that request token returns the access, public-access and read-access JWTs, which all
expire at 23:59:59 IST the same day. They are saved with that expiry, so the feed can say "log
in again" instead of reconnecting into HTTP 401s after midnight.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
import typer
from rich.console import Console

from marketpulse.credentials import CredentialStore, jwt_claims
from marketpulse.feeds import login_flow
from marketpulse.feeds.paytm.credentials import PROVIDER
from marketpulse.feeds.simulator.trading_calendar import IST

GETTOKEN_PATH: Final = "/accounts/v2/gettoken"
TOKEN_DEATH: Final = clock_time(23, 59, 59)
"""Every Paytm token's ``exp`` is this IST time on the day of issue (spec §2.5)."""

_BARE_TOKEN: Final = re.compile(r"[A-Za-z0-9._\-]{6,512}")

console = Console(stderr=True, highlight=False)


class PaytmLoginError(Exception):
    """The login could not be completed; the message says why and what to try."""


@dataclass(frozen=True, slots=True)
class PaytmSession:
    """What ``gettoken`` returns that we keep (tokens hidden from ``repr``)."""

    access_token: str = field(repr=False)
    public_access_token: str = field(repr=False)
    read_access_token: str = field(default="", repr=False)


def token_expiry(token: str, now: float) -> float:
    """The token's JWT ``exp`` when it has one, else 23:59:59 IST of ``now``'s IST day."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    day = datetime.fromtimestamp(now, IST).date()
    return datetime.combine(day, TOKEN_DEATH, IST).timestamp()


def login_url(login_base: str, api_key: str, state: str) -> str:
    """The browser page that authorises the app (the SDK concatenates without encoding)."""
    return f"{login_base}?apiKey={api_key}&state={state}"


def extract_request_token(text: str, state: str | None = None) -> str:
    """The ``requestToken`` from the redirect URL (or a bare token as pasted).

    A redirect whose ``success`` is not ``true`` or whose ``state`` differs from the one we put
    in the login URL is refused: it is not the answer to this login.
    """
    text = text.strip()
    if "=" in text or "?" in text or "/" in text:
        query = urlsplit(text).query or text.partition("?")[2] or text
        params = {k: v[0] for k, v in parse_qs(query).items()}
        success = params.get("success", "true").lower()
        if success != "true":
            raise PaytmLoginError(
                f"the redirect URL says success={success}: the login did not complete; open the "
                "login URL and log in again"
            )
        if state is not None and "state" in params and params["state"] != state:
            raise PaytmLoginError(
                f"the redirect URL carries state={params['state']!r}, not the {state!r} of this "
                "login's URL: paste the address this login produced"
            )
        token = (params.get("requestToken") or params.get("request_token") or "").strip()
        if not token:
            raise PaytmLoginError(
                "that URL has no requestToken; paste the whole address Paytm Money redirected "
                "your browser to after the login (it contains requestToken=...)"
            )
        return token
    if not _BARE_TOKEN.fullmatch(text):
        raise PaytmLoginError(
            f"{text!r} is not a request token; paste the redirect URL or its requestToken value"
        )
    return text


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:200] or "no message"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
        for key in ("message", "error", "msg"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]


def exchange_request_token(
    api_url: str,
    api_key: str,
    api_secret: str,
    request_token: str,
    *,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> PaytmSession:
    """``POST /accounts/v2/gettoken``; :class:`PaytmLoginError` carries Paytm's message."""
    url = api_url.rstrip("/") + GETTOKEN_PATH
    body = {"api_key": api_key, "api_secret_key": api_secret, "request_token": request_token}
    response = login_flow.post_for_tokens(
        url, error=PaytmLoginError, url_setting="PAYTM_API_URL", timeout=timeout,
        transport=transport, json=body,
    )  # fmt: skip
    if response.status_code != 200:
        raise PaytmLoginError(
            f"Paytm Money refused the login (HTTP {response.status_code}: "
            f"{_error_message(response).rstrip('.')}). A request token works once and only for "
            "a short time: open the login URL again and paste the new redirect URL. If it keeps "
            f"failing, check that PAYTM_API_SECRET belongs to api key {api_key!r}."
        )
    try:
        reply: Any = response.json()
    except ValueError:
        reply = None
    access = reply.get("access_token") if isinstance(reply, dict) else None
    if not isinstance(access, str) or not access:
        raise PaytmLoginError(
            f"{url} answered without an access_token ({response.text.strip()[:200]!r}); is "
            "PAYTM_API_URL right?"
        )
    assert isinstance(reply, dict)
    public = reply.get("public_access_token")
    read = reply.get("read_access_token")
    # Without a public-access token, feed with the access token (as one integration does).
    return PaytmSession(
        access,
        public if isinstance(public, str) and public else access,
        read if isinstance(read, str) else "",
    )


def login_cli(
    request_token: Annotated[
        str | None,
        typer.Option(
            "--request-token",
            "-t",
            help="the requestToken, or the whole URL Paytm Money redirected to after the login "
            "(default: prompted)",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="the app's api key (default: PAYTM_API_KEY, else saved, else prompted)"),
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(help="the app's api secret (default: PAYTM_API_SECRET, else prompted)"),
    ] = None,
) -> None:
    """Log in to Paytm Money and save the day's tokens (valid until 23:59:59 IST).

    Prints the login URL; open it, log in, and paste the address Paytm Money redirects your
    browser to (or just its requestToken). Tokens are saved under MARKETPULSE_HOME, mode 0600.
    """
    settings = login_flow.load_settings(console)
    store = CredentialStore.in_home(settings.marketpulse_home)
    saved = store.get(PROVIDER, {"api_key": "PAYTM_API_KEY"})
    key = login_flow.given_or_prompt("Paytm Money api key", api_key, saved.get("api_key"))
    secret = login_flow.given_or_prompt(
        "Paytm Money api secret", api_secret, os.environ.get("PAYTM_API_SECRET"), hide_input=True
    )
    state = secrets.token_hex(8)
    raw = login_flow.ask_for_redirect(
        console, "Paytm Money", login_url(settings.paytm_login_url, key, state), request_token,
        hint="Open it, log in, then paste the address Paytm Money redirects your browser to (or "
        "just its requestToken).",
        prompt="Redirect URL or requestToken",
    )  # fmt: skip
    with login_flow.exit_on(console, PaytmLoginError):
        # A token given on the command line came from an earlier URL: its state cannot match.
        token = extract_request_token(raw, None if request_token else state)
        session = exchange_request_token(settings.paytm_api_url, key, secret, token)
    now = time.time()
    expires_at = token_expiry(session.public_access_token, now)
    values = {"api_key": key, "access_token": session.access_token,
              "public_access_token": session.public_access_token}  # fmt: skip
    if session.read_access_token:
        values["read_access_token"] = session.read_access_token
    login_flow.save_or_exit(console, store, PROVIDER, values, expires_at)
    console.print(
        f"Logged in to Paytm Money; tokens saved to {store.path} "
        f"(valid until {login_flow.expiry_text(expires_at, seconds=True)}).",
        soft_wrap=True,
    )
    login_flow.note_env_overrides(console, ["PAYTM_ACCESS_TOKEN", "PAYTM_PUBLIC_ACCESS_TOKEN"])

"""``marketpulse login angelone``: client code + PIN + TOTP → a session saved for the feed.

SmartAPI has no browser redirect for market data: ``loginByPassword`` takes the client code, the
PIN and a current TOTP code (RFC 6238, from the secret shown when TOTP was enabled for the
account) and returns the jwt, feed and refresh tokens (spec §1.1). ``--refresh`` renews them with
``generateTokens`` instead, needing no PIN. The tokens are saved with an expiry (see
:data:`~marketpulse.feeds.angelone.session.DEFAULT_CUTOFF`); the PIN and TOTP secret are not.
"""

from __future__ import annotations

import asyncio
import time as clock
from datetime import time
from typing import Annotated

import msgspec
import pyotp
import typer
from rich.console import Console

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.feeds import login_flow
from marketpulse.feeds.angelone.rest import (
    LOGIN_PATH,
    REFRESH_PATH,
    SessionRejectedError,
    SmartApiClient,
    SmartApiError,
)
from marketpulse.feeds.angelone.session import (
    DEFAULT_CUTOFF,
    PROVIDER,
    REFRESH_ENV,
    SESSION_ENV,
    bare_jwt,
    session_expiry,
)
from marketpulse.feeds.base import FeedError

_HINTS = {
    "AB1007": "check the client code and PIN",
    "AB1050": "check the TOTP secret (and that this machine's clock is right)",
    "AB8050": "the refresh token is not valid any more: log in without --refresh",
    "AB8051": "the refresh token expired: log in without --refresh",
}


class SessionTokens(msgspec.Struct, frozen=True):
    """What a login or a refresh returns."""

    jwt_token: str
    feed_token: str
    refresh_token: str


class LoginError(FeedError):
    """The login was refused; the message includes the API's code and what to check."""


def _tokens(data: object, what: str) -> SessionTokens:
    if not isinstance(data, dict):
        raise LoginError(f"angelone {what}: the answer has no tokens ({data!r})")
    try:
        return SessionTokens(
            jwt_token=bare_jwt(str(data["jwtToken"])),
            feed_token=str(data["feedToken"]),
            refresh_token=str(data["refreshToken"]),
        )
    except KeyError as exc:
        raise LoginError(f"angelone {what}: the answer lacks {exc.args[0]}") from None


def _refused(what: str, exc: SmartApiError | SessionRejectedError) -> LoginError:
    hint = _HINTS.get(exc.errorcode)
    return LoginError(f"angelone {what} failed: {exc}" + (f"; {hint}" if hint else ""))


async def login(client: SmartApiClient, client_code: str, pin: str, totp: str) -> SessionTokens:
    """``loginByPassword``; raises :class:`LoginError` with the API's code and a hint."""
    body = {"clientcode": client_code, "password": pin, "totp": totp}
    try:
        data = await client.post(LOGIN_PATH, body)
    except (SmartApiError, SessionRejectedError) as exc:
        raise _refused("login", exc) from exc
    return _tokens(data, "login")


async def refresh(client: SmartApiClient, refresh_token: str) -> SessionTokens:
    """``generateTokens`` with the saved refresh token (and the current jwt in the header)."""
    try:
        data = await client.post(REFRESH_PATH, {"refreshToken": refresh_token})
    except (SmartApiError, SessionRejectedError) as exc:
        raise _refused("token refresh", exc) from exc
    return _tokens(data, "token refresh")


def totp_now(secret: str) -> str:
    """The current 6-digit code of a base32 TOTP secret (spaces ignored, any case)."""
    cleaned = secret.replace(" ", "").upper()
    try:
        return pyotp.TOTP(cleaned).now()
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise LoginError(
            "angelone: the TOTP secret is not valid base32 (letters A-Z and digits 2-7, as "
            f"shown when TOTP was enabled): {exc}"
        ) from None


def save_session(
    store: CredentialStore,
    api_key: str,
    client_code: str,
    tokens: SessionTokens,
    now: float,
    cutoff: time = DEFAULT_CUTOFF,
) -> float:
    """Write the session with its expiry; returns the expiry (epoch seconds)."""
    expires_at = session_expiry(now, cutoff)
    values = {"api_key": api_key, "client_code": client_code, **msgspec.structs.asdict(tokens)}
    store.save(PROVIDER, values, expires_at)
    return expires_at


def _parse_cutoff(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time of day such as 00:00 or 05:30") from None


async def _run(
    settings: Settings,
    store: CredentialStore,
    api_key: str,
    client_code: str,
    *,
    cutoff: time,
    pin: str | None = None,
    totp: str | None = None,
    refresh_token: str | None = None,
    jwt: str | None = None,
) -> float:
    """Log in (or refresh when ``refresh_token`` is given) and save; returns the expiry."""
    async with SmartApiClient(settings.angelone_api_url, api_key, jwt=jwt) as client:
        if refresh_token is not None:
            tokens = await refresh(client, refresh_token)
        else:
            if pin is None or totp is None:
                raise LoginError("angelone: a login needs the PIN and a TOTP code")
            tokens = await login(client, client_code, pin, totp)
    return save_session(store, api_key, client_code, tokens, clock.time(), cutoff)


def login_cli(
    api_key: Annotated[
        str | None,
        typer.Option(envvar="ANGELONE_API_KEY", help="SmartAPI app key (default: the saved one)"),
    ] = None,
    client_code: Annotated[
        str | None,
        typer.Option(envvar="ANGELONE_CLIENT_CODE", help="Angel One client code (login id)"),
    ] = None,
    pin: Annotated[
        str | None,
        typer.Option(envvar="ANGELONE_PIN", help="account PIN (asked for when not given)"),
    ] = None,
    totp_secret: Annotated[
        str | None,
        typer.Option(
            envvar="ANGELONE_TOTP_SECRET",
            help="base32 TOTP secret; the current code is computed from it",
        ),
    ] = None,
    totp: Annotated[
        str | None, typer.Option(help="a 6-digit TOTP code from your app, instead of the secret")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="renew the saved session with its refresh token")
    ] = False,
    valid_until: Annotated[
        str, typer.Option(help="IST time of day the saved session is treated as expired")
    ] = "00:00",
) -> None:
    """Log in to Angel One SmartAPI and save the session for the feed.

    Needs the SmartAPI app key, the client code, the PIN and TOTP (the secret, or a code from
    your authenticator app). Saves the jwt, feed and refresh tokens under MARKETPULSE_HOME
    (mode 0600) until the next VALID_UNTIL (IST; default midnight). Use --refresh to renew the
    saved session without the PIN.
    """
    console = Console(stderr=True)
    cutoff = _parse_cutoff(valid_until)
    settings = Settings()
    store = CredentialStore.in_home(settings.marketpulse_home)
    saved = store.get(PROVIDER, {**SESSION_ENV, **REFRESH_ENV})
    api_key = login_flow.given_or_prompt("SmartAPI app key", api_key, saved.get("api_key"))
    client_code = login_flow.given_or_prompt("Client code", client_code, saved.get("client_code"))
    try:
        if refresh:
            refresh_token, jwt = saved.get("refresh_token"), saved.get("jwt_token")
            if not refresh_token or not jwt:
                raise LoginError("angelone: no saved session to refresh; log in without --refresh")
            request = _run(settings, store, api_key, client_code, refresh_token=refresh_token,
                           jwt=jwt, cutoff=cutoff)  # fmt: skip
        else:
            pin = login_flow.given_or_prompt("PIN", pin, hide_input=True)
            code = totp or totp_now(
                login_flow.given_or_prompt("TOTP secret", totp_secret, hide_input=True)
            )
            request = _run(settings, store, api_key, client_code, pin=pin, totp=code,
                           cutoff=cutoff)  # fmt: skip
        expires_at = asyncio.run(request)
    except (FeedError, OSError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"angelone: {'session renewed' if refresh else 'logged in'} as {client_code}; "
        f"tokens saved to {store.path} (valid until {login_flow.expiry_text(expires_at)})",
        highlight=False,
    )

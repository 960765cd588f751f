"""Where the Fyers feed and REST client find the app id and access token, and what the token says.

A Fyers access token is a JWT whose payload carries ``exp`` (it is a one-day token) and
``hsm_key`` — the credential the data socket's in-band login wants (spec §1.2). Nothing here
checks the signature, exactly like the official SDK: we only need to read the claims, and an
undecodable or expired token must become an actionable :class:`FeedAuthError` *before* we open a
socket the server would only refuse. Values come from ``credentials.json`` (written by
``marketpulse login fyers``) and are re-read before every connect; environment variables win.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from marketpulse.credentials import CredentialsError, CredentialStore

PROVIDER: Final = "fyers"
LOGIN_HINT: Final = "marketpulse login fyers"
SESSION_ENV: Final[Mapping[str, str]] = {
    "app_id": "FYERS_APP_ID",
    "access_token": "FYERS_ACCESS_TOKEN",
}


@dataclass(frozen=True, slots=True)
class TokenClaims:
    hsm_key: str = field(repr=False)
    expires_at: float | None


def token_claims(access_token: str) -> TokenClaims:
    """``hsm_key`` and ``exp`` from the JWT payload (the second dot-separated part).

    Accepts ``APP_ID:JWT`` too, as the SDK does. Raises :class:`CredentialsError` (a
    ``FeedAuthError``) naming the login command when the token cannot be read.
    """
    parts = access_token.split(".")
    if len(parts) < 3:
        raise CredentialsError(
            f"fyers: the access token is not a JWT (no payload part); run `{LOGIN_HINT}`"
        )
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError) as exc:
        raise CredentialsError(
            f"fyers: the access token's payload cannot be decoded ({exc}); run `{LOGIN_HINT}`"
        ) from None
    hsm_key = claims.get("hsm_key") if isinstance(claims, dict) else None
    if not isinstance(hsm_key, str) or not hsm_key:
        raise CredentialsError(
            f"fyers: the access token has no hsm_key claim (is it a data-API v3 token?); "
            f"run `{LOGIN_HINT}`"
        )
    exp = claims.get("exp")
    return TokenClaims(hsm_key, float(exp) if isinstance(exp, int | float) else None)


@dataclass(frozen=True, slots=True)
class FyersCredentials:
    """The app id with the day's access token (kept out of ``repr``)."""

    app_id: str
    access_token: str = field(repr=False)

    @property
    def claims(self) -> TokenClaims:
        return token_claims(self.access_token)

    @property
    def authorization(self) -> str:
        """The REST ``Authorization`` header value, ``APP_ID:ACCESS_TOKEN``."""
        return f"{self.app_id}:{self.access_token}"

    def check_fresh(self, now: float | None = None) -> TokenClaims:
        """The claims, or :class:`CredentialsError` when ``exp`` has passed (spec §1.2: the
        server would refuse it; the SDK's code -99)."""
        claims = self.claims
        moment = time.time() if now is None else now
        if claims.expires_at is not None and moment >= claims.expires_at:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claims.expires_at))
            raise CredentialsError(
                f"fyers: the access token expired at {when} (Fyers tokens last one day); "
                f"run `{LOGIN_HINT}`"
            )
        return claims


def load_session(home: Path, env: Mapping[str, str] | None = None) -> FyersCredentials:
    """The saved (or environment) session; :class:`CredentialsError` says what to run."""
    store = CredentialStore.in_home(home, env)
    values = store.require(PROVIDER, SESSION_ENV, LOGIN_HINT)
    return FyersCredentials(values["app_id"], values["access_token"])


__all__ = [
    "LOGIN_HINT",
    "PROVIDER",
    "SESSION_ENV",
    "CredentialsError",
    "FyersCredentials",
    "TokenClaims",
    "load_session",
    "token_claims",
]

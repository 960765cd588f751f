"""Where the Kite feed and REST client find their api_key and access_token.

Kite access tokens die every morning at 06:00 IST, so the WebSocket client reads them again
before every (re)connect and the REST client before every session: a fresh
``marketpulse login kite`` is picked up by a running service without a restart. Environment
variables override the credentials file (see :mod:`marketpulse.credentials`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from marketpulse.credentials import CredentialsError, CredentialStore

PROVIDER: Final = "kite"
LOGIN_HINT: Final = "marketpulse login kite"
SESSION_ENV: Final[Mapping[str, str]] = {
    "api_key": "KITE_API_KEY",
    "access_token": "KITE_ACCESS_TOKEN",
}
"""Credential → environment variable for an API session (WebSocket and REST)."""

__all__ = [
    "LOGIN_HINT",
    "PROVIDER",
    "SESSION_ENV",
    "CredentialsError",
    "KiteCredentials",
    "load_session",
    "optional_session",
]


@dataclass(frozen=True, slots=True)
class KiteCredentials:
    """An api_key with the day's access token (kept out of ``repr`` so logs never show it)."""

    api_key: str
    access_token: str = field(repr=False)


def load_session(home: Path, env: Mapping[str, str] | None = None) -> KiteCredentials:
    """The session credentials; :class:`CredentialsError` (a ``FeedAuthError``) names what is
    missing or says the saved token expired, and tells the user to run the login command."""
    values = CredentialStore.in_home(home, env).require(PROVIDER, SESSION_ENV, LOGIN_HINT)
    return KiteCredentials(values["api_key"], values["access_token"])


def optional_session(home: Path, env: Mapping[str, str] | None = None) -> KiteCredentials | None:
    """The session credentials when usable, else ``None`` (for endpoints that work without)."""
    try:
        return load_session(home, env)
    except CredentialsError:
        return None

"""Where the Dhan feed and REST client find the client id and access token.

Dhan access tokens are JWTs generated on web.dhan.co (or through the consent flow) and valid for
about 24 hours. Both the WebSocket client and the REST client read them again before every
(re)connect, so a token renewed with ``marketpulse login dhan`` reaches a running service.
``DHAN_CLIENT_ID`` / ``DHAN_ACCESS_TOKEN`` override the credentials file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from marketpulse.credentials import CredentialsError, CredentialStore

PROVIDER: Final = "dhan"
LOGIN_HINT: Final = "marketpulse login dhan"
SESSION_ENV: Final[Mapping[str, str]] = {
    "client_id": "DHAN_CLIENT_ID",
    "access_token": "DHAN_ACCESS_TOKEN",
}

__all__ = ["LOGIN_HINT", "PROVIDER", "SESSION_ENV", "CredentialsError", "DhanCredentials",
           "load_session"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DhanCredentials:
    """A client id with its access token (kept out of ``repr`` so logs never show it)."""

    client_id: str
    access_token: str = field(repr=False)


def load_session(home: Path, env: Mapping[str, str] | None = None) -> DhanCredentials:
    """The credentials, or :class:`CredentialsError` (a ``FeedAuthError``) saying what is
    missing or that the saved token expired, with the command that fixes it."""
    values = CredentialStore.in_home(home, env).require(PROVIDER, SESSION_ENV, LOGIN_HINT)
    return DhanCredentials(values["client_id"], values["access_token"])

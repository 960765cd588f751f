"""Where the Paytm Money feed and REST client find the day's tokens.

``marketpulse login paytm`` exchanges a browser login for three JWTs — access, public-access and
read-access — that all die at 23:59:59 IST on the day of issue (spec §2.5). The WebSocket takes
only the public-access token; the live-price REST API takes the read-access token (or the access
token). Both clients read them again before every (re)connect, so a new login reaches a running
service. ``PAYTM_PUBLIC_ACCESS_TOKEN`` / ``PAYTM_ACCESS_TOKEN`` override the credentials file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from marketpulse.credentials import CredentialsError, CredentialStore

PROVIDER: Final = "paytm"
LOGIN_HINT: Final = "marketpulse login paytm"
FEED_ENV: Final[Mapping[str, str]] = {"public_access_token": "PAYTM_PUBLIC_ACCESS_TOKEN"}
REST_ENV: Final[Mapping[str, str]] = {"access_token": "PAYTM_ACCESS_TOKEN"}

__all__ = ["FEED_ENV", "LOGIN_HINT", "PROVIDER", "REST_ENV", "CredentialsError",
           "PaytmFeedCredentials", "load_feed_token", "load_rest_token"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class PaytmFeedCredentials:
    """The public-access token for the broadcast socket (kept out of ``repr``)."""

    public_access_token: str = field(repr=False)


def load_feed_token(home: Path, env: Mapping[str, str] | None = None) -> PaytmFeedCredentials:
    """The public-access token, or :class:`CredentialsError` (a ``FeedAuthError``) saying it is
    missing or expired and how to log in."""
    values = CredentialStore.in_home(home, env).require(PROVIDER, FEED_ENV, LOGIN_HINT)
    return PaytmFeedCredentials(values["public_access_token"])


def load_rest_token(home: Path, env: Mapping[str, str] | None = None) -> str:
    """The token for REST data calls: ``PAYTM_ACCESS_TOKEN`` when set, else the saved
    read-access token (the SDK's preference), else the saved access token."""
    environ = os.environ if env is None else env
    values = CredentialStore.in_home(home, env).require(PROVIDER, REST_ENV, LOGIN_HINT)
    if environ.get(REST_ENV["access_token"]):
        return values["access_token"]
    return values.get("read_access_token") or values["access_token"]

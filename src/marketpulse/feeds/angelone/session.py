"""An Angel One session: the four values the stream needs, where they are kept, when they expire.

``marketpulse login angelone`` writes them to the credentials file; the feed reads them again
before every connect (the session rolls over daily). Environment variables override the file,
so a session made elsewhere (or the emulator's fixed test session) works without logging in.
The PIN and the TOTP secret are login *inputs* and are never written to disk by marketpulse.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Final

import msgspec

from marketpulse.credentials import CredentialStore
from marketpulse.feeds.simulator.trading_calendar import IST

PROVIDER: Final = "angelone"
LOGIN_HINT: Final = "marketpulse login angelone"

SESSION_ENV: Final[dict[str, str]] = {
    "api_key": "ANGELONE_API_KEY",
    "client_code": "ANGELONE_CLIENT_CODE",
    "jwt_token": "ANGELONE_JWT_TOKEN",
    "feed_token": "ANGELONE_FEED_TOKEN",
}
"""What the WebSocket needs (spec §1), value name → environment variable."""

REFRESH_ENV: Final[dict[str, str]] = {"refresh_token": "ANGELONE_REFRESH_TOKEN"}
LOGIN_ENV: Final[dict[str, str]] = {
    "api_key": "ANGELONE_API_KEY",
    "client_code": "ANGELONE_CLIENT_CODE",
    "pin": "ANGELONE_PIN",
    "totp_secret": "ANGELONE_TOTP_SECRET",
}

DEFAULT_CUTOFF: Final = time(0, 0)
"""When a saved session is treated as expired: the next midnight IST after login.

Angel One says tokens are valid for the trading day; the exact cut-off is not documented (spec
§1.1, §10) and is commonly reported as midnight IST. ``login --valid-until`` changes it. If the
broker ends a session earlier, the stream gets HTTP 401 and the feed stops with the login hint.
"""


class AngelOneSession(msgspec.Struct, frozen=True):
    """The stream's credentials. ``jwt_token`` is kept without the ``Bearer`` prefix."""

    api_key: str
    client_code: str
    jwt_token: str
    feed_token: str

    @property
    def bearer(self) -> str:
        return f"Bearer {self.jwt_token}"


def bare_jwt(token: str) -> str:
    """Strip a ``Bearer `` prefix: the SDK hands it out prefixed, the API returns it bare."""
    return token[7:].strip() if token[:7].lower() == "bearer " else token.strip()


def load_session(store: CredentialStore) -> AngelOneSession:
    """The saved (or environment) session; a clear ``CredentialsError`` if missing/expired."""
    values = store.require(PROVIDER, SESSION_ENV, LOGIN_HINT)
    return AngelOneSession(
        api_key=values["api_key"],
        client_code=values["client_code"],
        jwt_token=bare_jwt(values["jwt_token"]),
        feed_token=values["feed_token"],
    )


def session_expiry(now: float, cutoff: time = DEFAULT_CUTOFF) -> float:
    """Epoch seconds of the first ``cutoff`` (IST wall clock) strictly after ``now``."""
    local = datetime.fromtimestamp(now, IST)
    candidate = datetime.combine(local.date(), cutoff, IST)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), cutoff, IST)
    return candidate.timestamp()

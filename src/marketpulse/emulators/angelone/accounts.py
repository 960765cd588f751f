"""The emulator's one test account and the sessions it hands out.

Fixed, documented credentials (``docs/brokers/angelone.md``) so that tests, demos and the official
SDK can log in offline. A fixed session (:data:`TEST_JWT`, :data:`TEST_FEED_TOKEN`) exists from
the start, so the stream can be used without logging in at all. Sessions expire
``Faults.expire_token_after`` seconds after they were issued, like the broker's daily rollover.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Final

import pyotp

from marketpulse.emulators.options import FaultClock

TEST_API_KEY: Final = "mp-test-api-key"
TEST_CLIENT_CODE: Final = "T1234"
TEST_PIN: Final = "1234"
TEST_TOTP_SECRET: Final = "MARKETPULSEEMULATORTESTSECRETAAA"  # base32, 160 bits
TEST_JWT: Final = "mp-test-jwt"
TEST_FEED_TOKEN: Final = "mp-test-feed-token"
TEST_REFRESH_TOKEN: Final = "mp-test-refresh-token"


@dataclass(slots=True)
class Session:
    client_code: str
    jwt: str
    feed_token: str
    refresh_token: str
    issued_at: float  # fault-clock time
    active: bool = True


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused, in the API's terms."""

    errorcode: str
    message: str


INVALID_TOKEN: Final = Refusal("AG8001", "Invalid Token")
EXPIRED_TOKEN: Final = Refusal("AG8002", "Token Expired")
INVALID_LOGIN: Final = Refusal("AB1007", "Invalid client code or PIN")
INVALID_TOTP: Final = Refusal("AB1050", "Invalid totp")
INVALID_REFRESH: Final = Refusal("AB8050", "Invalid Refresh Token")


@dataclass(slots=True)
class Accounts:
    """Credential checks for REST and the stream; tokens are random except the fixed session."""

    faults: FaultClock
    api_key: str = TEST_API_KEY
    client_code: str = TEST_CLIENT_CODE
    pin: str = TEST_PIN
    totp_secret: str = TEST_TOTP_SECRET
    _by_jwt: dict[str, Session] = field(default_factory=dict)
    _by_feed: dict[str, Session] = field(default_factory=dict)
    _by_refresh: dict[str, Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._add(Session(self.client_code, TEST_JWT, TEST_FEED_TOKEN, TEST_REFRESH_TOKEN,
                          self.faults.started))  # fmt: skip

    def _add(self, session: Session) -> Session:
        self._by_jwt[session.jwt] = session
        self._by_feed[session.feed_token] = session
        self._by_refresh[session.refresh_token] = session
        return session

    def _issue(self, client_code: str) -> Session:
        return self._add(
            Session(client_code, secrets.token_urlsafe(24), secrets.token_urlsafe(12),
                    secrets.token_urlsafe(24), self.faults.now())
        )  # fmt: skip

    def expired(self, session: Session) -> bool:
        after = self.faults.faults.expire_token_after
        return after is not None and self.faults.now() - session.issued_at >= after

    def check(self, session: Session | None) -> Session | Refusal:
        if session is None or not session.active:
            return INVALID_TOKEN
        return EXPIRED_TOKEN if self.expired(session) else session

    def login(self, client_code: str, pin: str, totp: str) -> Session | Refusal:
        if client_code != self.client_code or pin != self.pin:
            return INVALID_LOGIN
        if not pyotp.TOTP(self.totp_secret).verify(totp, valid_window=1):
            return INVALID_TOTP
        return self._issue(client_code)

    def refresh(self, refresh_token: str) -> Session | Refusal:
        current = self._by_refresh.get(refresh_token)
        if current is None or not current.active or self.expired(current):
            return INVALID_REFRESH
        current.active = False
        return self._issue(current.client_code)

    def logout(self, session: Session) -> None:
        session.active = False

    def by_jwt(self, authorization: str | None) -> Session | Refusal:
        """The session of an ``Authorization`` value, with or without ``Bearer ``."""
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        return self.check(self._by_jwt.get(token))

    def for_stream(
        self, client_code: str | None, feed_token: str | None, authorization: str | None,
        api_key: str | None,
    ) -> Session | Refusal:  # fmt: skip
        """Stream handshake: client code + feed token required, jwt and key checked if sent."""
        if not client_code or not feed_token:
            return INVALID_TOKEN
        if api_key is not None and api_key != self.api_key:
            return INVALID_TOKEN
        found = self.check(self._by_feed.get(feed_token))
        if isinstance(found, Refusal):
            return found
        if found.client_code != client_code:
            return INVALID_TOKEN
        if authorization is not None:
            by_jwt = self.by_jwt(authorization)
            if isinstance(by_jwt, Refusal):
                return by_jwt
            if by_jwt is not found:
                return INVALID_TOKEN
        return found

"""The Kite ticker WebSocket: one authenticated session per :class:`KiteConnection`.

Only the broker-specific part lives here — the handshake (credentials in the query string, HTTP
403 meaning "log in again"), the subscribe/mode requests and turning frames into ticks. Keeping
the feed alive (backoff, resubscription, watchdogs, spreading instruments over up to three
connections of 3000) is the shared :class:`~marketpulse.feeds.base.FeedSupervisor`'s job.

Bad data from the broker never ends a session: the codec skips what it cannot read and this
module counts it and logs each kind of problem once, with a sample, so a broken feed is visible
without one log line per tick.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from marketpulse.config import Settings
from marketpulse.feeds.base import (
    FeedAdapter,
    FeedAuthError,
    FeedConnection,
    FeedConnectionError,
    FeedError,
)
from marketpulse.feeds.kite.credentials import LOGIN_HINT, KiteCredentials, load_session
from marketpulse.feeds.kite.wire import (
    BrokerMessage,
    DecodeResult,
    ErrorMessage,
    OrderUpdate,
    decode_frame,
    decode_text,
    encode_mode,
    encode_subscribe,
    encode_unsubscribe,
)
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_close import close_reason
from marketpulse.feeds.websocket_session import open_websocket, require_websocket_url, send_or_fail
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

MAX_INSTRUMENTS_PER_CONNECTION: Final = 3000
MAX_CONNECTIONS: Final = 3
"""Kite's documented limits: 3000 instruments per connection, 3 connections per api_key."""

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
"""A frame of 3000 full packets is ~560 KB; anything far beyond that is not a Kite frame."""

_PROBLEM_KINDS_LOGGED: Final = 100
"""Distinct problem kinds remembered for log-once (bounds memory on a garbage stream)."""
_DIGITS: Final = re.compile(r"\d+")


class FeedProblems:
    """What the broker sent that we could not use, counted; each kind logged once.

    A malformed feed tends to repeat the same fault on every frame, so the first occurrence of a
    kind (the message with its numbers masked) is logged with a hex sample of the frame and the
    rest are only counted; server ``error`` messages are logged once per distinct text.
    """

    def __init__(self) -> None:
        self.bad_frames = 0
        self.skipped_packets = 0
        self.server_errors = 0
        self.last_server_error: str | None = None
        self._logged: set[str] = set()

    def _first(self, kind: str) -> bool:
        if kind in self._logged or len(self._logged) >= _PROBLEM_KINDS_LOGGED:
            return False
        self._logged.add(kind)
        return True

    def frame(self, result: DecodeResult, frame: bytes) -> None:
        self.bad_frames += 1
        self.skipped_packets += result.skipped
        for error in result.errors:
            if self._first("frame:" + _DIGITS.sub("N", error)):
                log.warning(
                    "kite: malformed frame: %s (%d packet(s) skipped; frame of %d bytes "
                    "starts %s); further problems of this kind are only counted",
                    error,
                    result.skipped,
                    len(frame),
                    frame[:48].hex(),
                )

    def text(self, text: str) -> None:
        message = decode_text(text)
        if isinstance(message, ErrorMessage):
            self.server_errors += 1
            self.last_server_error = message.data
            if self._first("error:" + message.data):
                log.warning("kite: the ticker reported an error: %s", message.data)
        elif isinstance(message, BrokerMessage):
            if self._first("message:" + message.data):
                log.info("kite: broker message: %s", message.data)
        elif isinstance(message, OrderUpdate):
            log.debug("kite: order update %s %s ignored", message.order_id, message.status)


class KiteConnection(FeedConnection):
    """One ticker WebSocket. New tokens are sent as ``subscribe`` then ``mode``, exactly as
    the official SDK does, because the server starts every new token in ``quote``."""

    def __init__(self, ws: ClientConnection, adapter: KiteAdapter) -> None:
        self._ws = ws
        self._adapter = adapter

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        numeric = self._adapter.numeric_tokens(tokens)
        if numeric:
            await self._send(encode_subscribe(numeric))
            await self._send(encode_mode(mode, numeric))

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        numeric = self._adapter.numeric_tokens(tokens)
        if numeric:
            await self._send(encode_unsubscribe(numeric))

    async def _send(self, message: str) -> None:
        await send_or_fail(self._ws, message, "kite: connection")

    async def receive(self) -> list[Tick]:
        """The next frame's ticks; ``[]`` for heartbeats and text messages (still proof of life)."""
        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            raise FeedConnectionError(f"kite: connection closed ({close_reason(exc)})") from exc
        ts_recv = time.time_ns()
        adapter = self._adapter
        tap = adapter.frame_tap
        if tap is not None:
            tap(ts_recv, message)
        if isinstance(message, str):
            adapter.problems.text(message)
            return []
        if len(message) < 2:  # the 1-byte heartbeat
            return []
        result = decode_frame(message, ts_recv, adapter.index_exchanges)
        if result.skipped or result.errors:
            adapter.problems.frame(result, message)
        return result.ticks

    async def close(self) -> None:
        await self._ws.close()


class KiteAdapter(FeedAdapter):
    """The ``kite`` feed: 3000 instruments per connection, 3 connections per api_key.

    Credentials are read from ``MARKETPULSE_HOME/credentials.json`` (or ``KITE_API_KEY`` /
    ``KITE_ACCESS_TOKEN``) before every connect, so a new day's login reaches a running feed.
    ``index_exchanges`` (token → ``NSE_INDEX``/``BSE_INDEX``) comes from the instrument
    master, because an index token alone does not say whose index it is.
    """

    name = "kite"

    def __init__(
        self,
        ws_url: str,
        home: Path,
        *,
        max_instruments_per_connection: int = MAX_INSTRUMENTS_PER_CONNECTION,
        max_connections: int = MAX_CONNECTIONS,
        index_exchanges: Mapping[int, str] | None = None,
        open_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        require_websocket_url(ws_url, "KITE_WS_URL")
        self.ws_url = ws_url
        self.home = home
        self.max_instruments_per_connection = max_instruments_per_connection
        self.max_connections = max_connections
        self.index_exchanges: dict[int, str] = dict(index_exchanges or {})
        self.open_timeout = open_timeout
        self.problems = FeedProblems()
        self._env = env
        self._bad_tokens_logged = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KiteAdapter:
        options: dict[str, Any] = {
            "ws_url": settings.kite_ws_url,
            "home": settings.marketpulse_home,
        }
        options.update(overrides)
        return cls(**options)

    async def load_credentials(self) -> KiteCredentials:
        return load_session(self.home, self._env)

    def url_for(self, credentials: KiteCredentials) -> str:
        query = urlencode(
            {"api_key": credentials.api_key, "access_token": credentials.access_token}
        )
        return f"{self.ws_url}{'&' if '?' in self.ws_url else '?'}{query}"

    async def connect(self, credentials: Any) -> KiteConnection:
        if not isinstance(credentials, KiteCredentials):
            raise TypeError(f"expected KiteCredentials, got {type(credentials).__name__}")

        def refused(exc: InvalidStatus) -> FeedError:
            status = exc.response.status_code
            if status in (401, 403):
                return FeedAuthError(
                    f"kite: the ticker rejected the credentials (HTTP {status}): the access "
                    "token has expired (Kite tokens expire at 06:00 IST every day) or does not "
                    f"belong to api_key {credentials.api_key!r}; run `{LOGIN_HINT}` (or update "
                    "KITE_ACCESS_TOKEN if you set it in the environment)"
                )
            body = exc.response.body.decode(errors="replace").strip()[:200]
            return FeedConnectionError(
                f"kite: the ticker refused the connection with HTTP {status}"
                + (f": {body}" if body else "")
            )

        ws = await open_websocket(
            self.url_for(credentials),
            refused=refused,
            unreachable=lambda exc: FeedConnectionError(
                f"kite: cannot connect to {self.ws_url}: {exc}"
            ),
            open_timeout=self.open_timeout,
            close_timeout=10.0,  # the library's default, kept for Kite
            max_size=MAX_MESSAGE_BYTES,
            additional_headers={"X-Kite-Version": "3"},
        )
        return KiteConnection(ws, self)

    def numeric_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Kite instrument tokens are uint32; anything else is dropped (and reported once)."""
        numeric: list[int] = []
        bad: list[str] = []
        for token in tokens:
            text = str(token)
            if text.isdigit() and int(text) <= 0xFFFFFFFF:
                numeric.append(int(text))
            else:
                bad.append(text)
        if bad and not self._bad_tokens_logged:
            self._bad_tokens_logged = True
            log.warning(
                "kite: ignoring %d token(s) that are not Kite instrument tokens, e.g. %s",
                len(bad),
                ", ".join(bad[:5]),
            )
        return numeric

    def market_open(self, now: float) -> bool:
        """NSE/BSE cash hours (09:15–15:30 IST, weekdays): when silence means a stalled feed.

        Commodity and currency sessions run longer; outside NSE hours a silent MCX/CDS
        subscription is only caught by the heartbeat watchdog, not the data-stall one.
        """
        return session_open(now)

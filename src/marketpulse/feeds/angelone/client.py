"""The Angel One SmartAPI WebSocket 2.0 session behind the shared feed contract.

:class:`AngelOneAdapter` knows the broker's limits (1000 tokens per connection, 3 connections
per client code — spec §2), where the session is kept and which segment each token lives in
(:class:`~.instruments.Directory`); the shared supervisor does pooling, reconnects,
resubscription and watchdogs. :class:`AngelOneConnection` speaks the protocol on one socket:

- the upgrade carries the four auth headers; HTTP 401/403 → ``FeedAuthError`` with the login
  hint (the session expired or is wrong: retrying cannot help); HTTP 429 (too many connections)
  is transient, after a pause so the supervisor's next attempt is not another instant refusal;
- subscriptions are per (mode, token) with no mode-change action, so switching a token's mode
  unsubscribes it in the old mode before subscribing it in the new one, and every request
  groups tokens by exchangeType;
- a text ``ping`` every ``ping_interval`` (10 s, like the JS SDK); the ``pong`` comes back as an
  empty batch, which is what keeps the supervisor's heartbeat watchdog satisfied on a quiet
  socket;
- one reader task moves frames from the socket into a bounded inbox, so ``receive`` hands the
  supervisor every frame that arrived meanwhile as one batch (Angel sends one packet per
  message; batching keeps the per-message cost off the publisher). Frames go to
  ``adapter.frame_tap`` just before they are decoded;
- malformed binary frames are counted per reason and logged once per reason with a sample;
  server error messages are logged and kept in ``adapter.server_errors``; nothing raises.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.feeds.angelone import wire
from marketpulse.feeds.angelone.instruments import Directory
from marketpulse.feeds.angelone.session import LOGIN_HINT, AngelOneSession, load_session
from marketpulse.feeds.base import (
    FeedAdapter,
    FeedAuthError,
    FeedConnection,
    FeedConnectionError,
)
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_session import Frame, WebSocketSession, stamped
from marketpulse.model import Mode, Tick
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

MAX_TOKENS_PER_CONNECTION: Final = 1000
MAX_CONNECTIONS: Final = 3
PING_INTERVAL: Final = 10.0


class AngelOneAdapter(FeedAdapter):
    """The ``angelone`` feed: endpoints, credentials, limits and the token directory."""

    name = "angelone"
    max_instruments_per_connection = MAX_TOKENS_PER_CONNECTION
    max_connections = MAX_CONNECTIONS

    def __init__(
        self,
        ws_url: str,
        store: CredentialStore,
        *,
        ping_interval: float = PING_INTERVAL,
        rate_limited_pause: float = 5.0,
        open_timeout: float = 10.0,
        directory: Directory | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.store = store
        self.ping_interval = ping_interval
        self.rate_limited_pause = rate_limited_pause
        self.open_timeout = open_timeout
        self.directory = directory or Directory()
        self.skipped: collections.Counter[str] = collections.Counter()
        self.server_errors: collections.deque[str] = collections.deque(maxlen=20)
        self._reported: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AngelOneAdapter:
        return cls(
            settings.angelone_ws_url,
            CredentialStore.in_home(settings.marketpulse_home),
            **overrides,
        )

    def track(self, tracked: Sequence[TrackedSymbol]) -> None:
        """Learn each instrument's segment and label from the instrument master."""
        self.directory.track(tracked)

    async def load_credentials(self) -> AngelOneSession:
        return load_session(self.store)

    async def connect(self, credentials: Any) -> AngelOneConnection:
        session = credentials if isinstance(credentials, AngelOneSession) else None
        if session is None:
            raise FeedAuthError(f"angelone: no session; run `{LOGIN_HINT}`")
        headers = {
            "Authorization": session.bearer,
            "x-api-key": session.api_key,
            "x-client-code": session.client_code,
            "x-feed-token": session.feed_token,
        }
        try:
            ws = await connect(
                self.ws_url,
                additional_headers=headers,
                ping_interval=None,  # the text ping below is the heartbeat
                open_timeout=self.open_timeout,
                close_timeout=2.0,  # a dead peer must not hold up the reconnect
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise FeedAuthError(
                    f"angelone: the stream refused the session for client {session.client_code} "
                    f"(HTTP {status}); it has expired or is not valid: run `{LOGIN_HINT}`"
                ) from exc
            if status == 429:
                await asyncio.sleep(self.rate_limited_pause)
                raise FeedConnectionError(
                    "angelone: HTTP 429 at connect: too many connections or requests for this "
                    f"client code (at most {MAX_CONNECTIONS} connections across all apps)"
                ) from exc
            raise FeedConnectionError(f"angelone: connect refused with HTTP {status}") from exc
        return AngelOneConnection(ws, self)

    def market_open(self, now: float) -> bool:
        """NSE/BSE normal session (09:15-15:30 IST, weekdays); silence outside it is normal."""
        return session_open(now)

    def report_skip(self, reason: str, frame: bytes) -> None:
        """Count a malformed frame; the first of each reason is logged with a sample."""
        self.skipped[reason] += 1
        if reason not in self._reported:
            self._reported.add(reason)
            log.warning(
                "angelone: skipping malformed binary frames (%s), e.g. %d bytes: %s",
                reason,
                len(frame),
                frame[:64].hex(),
            )

    def report_text(self, text: str) -> None:
        parsed = wire.parse_server_text(text)
        if isinstance(parsed, wire.ErrorMessage):
            detail = f"{parsed.error_code}: {parsed.error_message}"
            self.server_errors.append(detail)
            log.warning("angelone: server error %s (correlation %r)", detail, parsed.correlation_id)
        elif isinstance(parsed, wire.UnknownText) and "text" not in self._reported:
            self._reported.add("text")
            log.warning("angelone: ignoring unexpected text message, e.g. %r", text[:200])


class AngelOneConnection(FeedConnection):
    """One smart-stream socket: subscriptions by (mode, token), heartbeat, batched decoding."""

    def __init__(self, ws: ClientConnection, adapter: AngelOneAdapter) -> None:
        self._adapter = adapter
        self._directory = adapter.directory
        self._modes: dict[str, wire.WireMode] = {}  # subscription key → mode on this socket
        self._session = WebSocketSession(ws, "angelone", stamped)
        # The text ping is the heartbeat: its ``pong`` arrives as a frame like any other.
        pinger = self._session.keep_alive(
            adapter.ping_interval, heartbeat=wire.PING, websocket_ping=False
        )
        self._session.start(pinger, "ping")

    # ------------------------------------------------------------------ requests

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        wanted = wire.WIRE_MODE_FOR[Mode(mode).value]
        moving: dict[wire.WireMode, list[str]] = {}
        for key in tokens:
            old = self._modes.get(key)
            if old is not None and old != wanted:
                moving.setdefault(old, []).append(key)
        for old, keys in moving.items():
            await self._session.send(wire.encode_unsubscribe(old, self._directory.group(keys)))
        if tokens:
            await self._session.send(wire.encode_subscribe(wanted, self._directory.group(tokens)))
        for key in tokens:
            self._modes[key] = wanted

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        by_mode: dict[wire.WireMode, list[str]] = {}
        for key in tokens:
            mode = self._modes.pop(key, None)
            if mode is not None:
                by_mode.setdefault(mode, []).append(key)
        for mode, keys in by_mode.items():
            await self._session.send(wire.encode_unsubscribe(mode, self._directory.group(keys)))

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> list[Tick]:
        return self._decode(await self._session.frames())

    def _decode(self, frames: list[Frame]) -> list[Tick]:
        adapter = self._adapter
        tap = adapter.frame_tap
        ticks: list[Tick] = []
        append = ticks.append
        decode_one = wire.decode_one
        for ts_recv, frame in frames:
            if tap is not None:
                tap(ts_recv, frame)
            if isinstance(frame, str):
                if frame != wire.PONG:
                    adapter.report_text(frame)
                continue
            out = decode_one(frame, ts_recv)
            if isinstance(out, Tick):
                append(out)
            else:
                adapter.report_skip(out.value, frame)
        return self._directory.label(ticks)

    async def close(self) -> None:
        await self._session.close()

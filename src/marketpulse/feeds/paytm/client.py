"""The Paytm Money broadcast feed behind the shared feed contract.

:class:`PaytmAdapter` knows the limits (instruments per socket and sockets per token — both
unverified third-party figures, so settings) and where the public-access token lives; the shared
:class:`~marketpulse.feeds.base.FeedSupervisor` does pooling, reconnects, resubscription in each
instrument's mode and the watchdogs. :class:`PaytmConnection` speaks the protocol on one socket:

- the public-access token travels only in the query string (``x_jwt_token``); a refused
  handshake with HTTP 401/403 (what an expired or wrong token gets) is a :class:`FeedAuthError`
  with the login hint, fatal; other statuses are transient;
- subscriptions are JSON arrays of ``ADD``/``REMOVE`` preferences. How to change an instrument's
  mode is undocumented, so a mode change removes it in its old mode and adds it in the new one;
- a packet names only its security id, so a :class:`~marketpulse.feeds.paytm.wire.KeyBook`
  maps ids back to tokens; an instrument the wire could not tell apart from one already on this
  socket is refused with a warning;
- every subscription message sent is also handed to ``frame_tap`` (as a text frame), so a raw
  capture says which token each id meant and replays to the same ticks;
- no application heartbeat exists, so the connection sends WebSocket pings and reports each pong
  as an empty batch, which keeps the supervisor's heartbeat watchdog happy on a quiet market;
- server text frames (undocumented errors) and malformed packets are counted per kind and
  logged once with a sample; nothing raises.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from marketpulse.config import Settings
from marketpulse.feeds.base import (
    FeedAdapter,
    FeedAuthError,
    FeedConnection,
    FeedConnectionError,
    FeedError,
)
from marketpulse.feeds.paytm import wire
from marketpulse.feeds.paytm.credentials import LOGIN_HINT, PaytmFeedCredentials, load_feed_token
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_session import (
    Frame,
    WebSocketSession,
    open_websocket,
    require_websocket_url,
    stamped,
)
from marketpulse.model import Mode, Tick
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

PING_INTERVAL: Final = 5.0
PREFS_PER_MESSAGE: Final = 100


class PaytmAdapter(FeedAdapter):
    """The ``paytm`` feed: endpoint, credentials, limits and instrument labels."""

    name = "paytm"

    def __init__(
        self,
        ws_url: str,
        home: Path,
        *,
        max_instruments_per_connection: int = 200,
        max_connections: int = 1,
        ping_interval: float = PING_INTERVAL,
        open_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        require_websocket_url(ws_url, "PAYTM_WS_URL")
        self.ws_url = ws_url
        self.home = home
        self.max_instruments_per_connection = max_instruments_per_connection
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.labels: dict[str, tuple[str, str]] = {}  # token → (exchange, symbol)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()
        self._env = env
        self._reported: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PaytmAdapter:
        options: dict[str, Any] = {
            "ws_url": settings.paytm_ws_url,
            "home": settings.marketpulse_home,
            "max_instruments_per_connection": settings.paytm_max_instruments_per_connection,
            "max_connections": settings.paytm_max_connections,
        }
        options.update(overrides)
        return cls(**options)

    def track(self, tracked: Sequence[TrackedSymbol]) -> None:
        """Learn each token's canonical symbol and exchange from the instrument master."""
        for item in tracked:
            if item.symbol:
                self.labels[item.token] = (item.exchange, item.symbol)

    async def load_credentials(self) -> PaytmFeedCredentials:
        return load_feed_token(self.home, self._env)

    def url_for(self, credentials: PaytmFeedCredentials) -> str:
        query = urlencode({"x_jwt_token": credentials.public_access_token})
        return f"{self.ws_url}{'&' if '?' in self.ws_url else '?'}{query}"

    async def connect(self, credentials: Any) -> PaytmConnection:
        if not isinstance(credentials, PaytmFeedCredentials):
            raise FeedAuthError(f"paytm: no public access token; run `{LOGIN_HINT}`")
        ws = await open_websocket(
            self.url_for(credentials),
            refused=_refused,
            # The URL carries the token: name only the endpoint.
            unreachable=lambda exc: FeedConnectionError(
                f"paytm: cannot connect to the broadcast feed: {exc}"
            ),
            open_timeout=self.open_timeout,
        )
        return PaytmConnection(ws, self)

    def market_open(self, now: float) -> bool:
        """NSE/BSE cash hours: when silence means a stalled feed (spec §6)."""
        return session_open(now)

    def report(self, kind: str, detail: str, frame: bytes | str) -> None:
        """Count a problem by kind; log the first of each kind with a sample."""
        self.skipped[kind] += 1
        if kind not in self._reported and len(self._reported) < 100:
            self._reported.add(kind)
            sample = frame[:48].hex() if isinstance(frame, bytes) else repr(frame[:120])
            log.warning(
                "paytm: %s; frame of %d starts %s; further problems of this kind are only counted",
                detail,
                len(frame),
                sample,
            )

    def label(self, ticks: list[Tick]) -> list[Tick]:
        labels = self.labels
        if labels:
            for tick in ticks:
                found = labels.get(tick.token)
                if found is not None:
                    tick.exchange, tick.symbol = found
        return ticks


def _refused(exc: InvalidStatus) -> FeedError:
    status = exc.response.status_code
    if status in (401, 403):
        return FeedAuthError(
            f"paytm: the broadcast feed refused the public access token (HTTP {status}): "
            f"it has expired (tokens die at 23:59:59 IST) or is invalid; run "
            f"`{LOGIN_HINT}` (or update PAYTM_PUBLIC_ACCESS_TOKEN if you set it)"
        )
    return FeedConnectionError(f"paytm: the broadcast feed answered HTTP {status}")


def _kind(error: str) -> str:
    return "".join("N" if c.isdigit() else c for c in error)


class PaytmConnection(FeedConnection):
    """One broadcast socket: its subscriptions (token → mode) and the id → token book."""

    def __init__(self, ws: ClientConnection, adapter: PaytmAdapter) -> None:
        self._adapter = adapter
        self._book = wire.KeyBook()
        self._modes: dict[str, str] = {}
        self._session = WebSocketSession(ws, "paytm", stamped)
        self._session.start(self._session.keep_alive(adapter.ping_interval), "ping")

    @property
    def modes(self) -> dict[str, str]:
        """What this socket streams: token → canonical mode."""
        return dict(self._modes)

    # ------------------------------------------------------------------ requests

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        wanted = Mode(mode).value
        keys = self._valid(tokens)
        moving: dict[str, list[str]] = {}
        fresh = []
        for key in keys:
            old = self._modes.get(key)
            if old is None:
                fresh.append(key)
            elif old != wanted:
                moving.setdefault(old, []).append(key)
        for clash in self._book.add(fresh):
            fresh.remove(clash)
            keys.remove(clash)
            self._adapter.refused[clash] += 1
            log.warning(
                "paytm: not subscribing %s: another instrument on this connection has the same "
                "security id and the packets could not be told apart",
                clash,
            )
        for old, old_keys in moving.items():
            await self._send("REMOVE", old, old_keys)
        if keys:
            await self._send("ADD", wanted, keys)
        for key in keys:
            self._modes[key] = wanted

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        by_mode: dict[str, list[str]] = {}
        for token in tokens:
            try:
                key = wire.normalize_key(token)
            except ValueError:
                continue
            mode = self._modes.pop(key, None)
            if mode is not None:
                by_mode.setdefault(mode, []).append(key)
        for mode, keys in by_mode.items():
            await self._send("REMOVE", mode, keys)
            # Forgotten only after REMOVE: packets already in flight still find their token.
            self._book.remove(keys)

    def _valid(self, tokens: Sequence[str]) -> list[str]:
        keys: dict[str, None] = {}
        for token in tokens:
            try:
                keys[wire.normalize_key(token)] = None
            except ValueError as exc:
                if "key:" + token not in self._adapter._reported:
                    self._adapter._reported.add("key:" + token)
                    log.warning("paytm: not subscribing %r: %s", token, exc)
        return list(keys)

    async def _send(self, action: str, mode: str, keys: list[str]) -> None:
        tap = self._adapter.frame_tap
        for start in range(0, len(keys), PREFS_PER_MESSAGE):
            message = wire.encode_preferences(action, mode, keys[start : start + PREFS_PER_MESSAGE])
            if tap is not None:
                tap(time.time_ns(), message)
            await self._session.send(message)

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> list[Tick]:
        return self._decode(await self._session.frames())

    def _decode(self, frames: list[Frame]) -> list[Tick]:
        adapter = self._adapter
        tap = adapter.frame_tap
        labels = self._book.labels
        out: list[Tick] = []
        for ts_recv, frame in frames:
            if tap is not None:
                tap(ts_recv, frame)
            if isinstance(frame, str):
                adapter.report("server text frame", f"server text message {frame[:200]!r}", frame)
                continue
            decoded = wire.decode_frame(frame, labels, ts_recv)
            for error in decoded.errors:
                adapter.report(_kind(error), f"skipping malformed data ({error})", frame)
            if decoded.unmapped:
                adapter.skipped["packet for an id not subscribed"] += decoded.unmapped
            out.extend(decoded.ticks)
        return adapter.label(out)

    async def close(self) -> None:
        await self._session.close()

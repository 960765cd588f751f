"""The DhanHQ v2 live market feed behind the shared feed contract.

:class:`DhanAdapter` knows the broker's limits (5000 instruments per connection, 5 connections per
client id — spec §0) and where the credentials live; the shared
:class:`~marketpulse.feeds.base.FeedSupervisor` does pooling, reconnects, resubscription and the
watchdogs. :class:`DhanConnection` speaks the protocol on one socket:

- credentials travel in the query string (``token``, ``clientId``, ``authType=2``); Dhan accepts
  the upgrade even for bad credentials and then sends a *disconnect packet* (code 50). Its
  reason is mapped to an actionable error: 806–810 (no data plan, expired/invalid token or
  client id) are :class:`FeedAuthError` — fatal, reconnecting cannot help — and everything else
  (805 too many connections, 800 server error, 804 too many instruments) is transient. Ticks
  that arrived in the same batch are delivered before the error is raised;
- subscriptions are per (mode, instrument) and there is no mode-change request, so switching an
  instrument's mode unsubscribes it in the old mode first; requests carry ≤ 100 instruments;
- the server pings every 10 s but pings are invisible to ``recv``, so the connection sends its
  own WebSocket ping every ``ping_interval`` and reports each pong as an empty batch: that is
  what satisfies the supervisor's heartbeat watchdog on a quiet market;
- with ``depth_levels=20`` the connection also opens the 20-level depth socket for its full-mode
  NSE_EQ/NSE_FNO instruments (≤ 50 per connection, so the adapter caps connections at 50
  instruments) and full ticks carry the 20-level book;
- malformed packets are counted per reason and logged once with a sample; nothing raises.
"""

from __future__ import annotations

import collections
import contextlib
import logging
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
    FeedLimitError,
)
from marketpulse.feeds.dhan import wire
from marketpulse.feeds.dhan.credentials import LOGIN_HINT, DhanCredentials, load_session
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_session import (
    Data,
    WebSocketSession,
    open_websocket,
    require_websocket_url,
)
from marketpulse.model import Mode, Tick
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

MAX_INSTRUMENTS_PER_CONNECTION: Final = 5000
MAX_CONNECTIONS: Final = 5
MAX_DEPTH20_PER_CONNECTION: Final = 50
DEPTH20_SEGMENTS: Final = frozenset({"NSE_EQ", "NSE_FNO"})
PING_INTERVAL: Final = 5.0

Frame = tuple[int, bool, Data]  # (ts_recv ns, from the depth socket, frame)


def _main_frame(ts_recv: int, frame: Data) -> Frame:
    return ts_recv, False, frame


def _depth_frame(ts_recv: int, frame: Data) -> Frame:
    return ts_recv, True, frame


class DhanDisconnectError(FeedConnectionError):
    """The server sent a disconnect packet with a transient reason (the supervisor retries)."""


def disconnect_error(reason: int, client_id: str, depth: bool = False) -> Exception:
    """The error a disconnect packet's ``reason`` stands for, saying what to do about it."""
    what = wire.describe_disconnect(reason)
    where = "the 20-level depth socket" if depth else "the market feed"
    if reason == 807:
        return FeedAuthError(
            f"dhan: {where} disconnected with 807: {what} for client {client_id}; generate a new "
            f"access token on web.dhan.co (Profile → Access DhanHQ APIs) and run `{LOGIN_HINT}` "
            "(or update DHAN_ACCESS_TOKEN if you set it in the environment)"
        )
    if reason == 806:
        return FeedAuthError(
            f"dhan: {where} disconnected with 806: {what} for client {client_id}; market data "
            "needs the paid Data APIs plan (web.dhan.co → DhanHQ APIs), then reconnect"
        )
    if reason in wire.AUTH_REASONS:
        return FeedAuthError(
            f"dhan: {where} disconnected with {reason}: {what} (client {client_id}); check "
            f"DHAN_CLIENT_ID and the access token, then run `{LOGIN_HINT}`"
        )
    if reason == 805:
        return DhanDisconnectError(
            f"dhan: {where} disconnected with 805: {what}. Another process (or app) is using "
            f"client {client_id}'s sockets; run at most {MAX_CONNECTIONS} connections per client "
            "id across everything that uses it"
        )
    if reason == 804:
        return FeedLimitError(
            f"dhan: {where} disconnected with 804: {what} ({MAX_INSTRUMENTS_PER_CONNECTION} per "
            "connection, 100 per request)"
        )
    return DhanDisconnectError(f"dhan: {where} disconnected with {reason}: {what}")


class DhanAdapter(FeedAdapter):
    """The ``dhan`` feed: endpoints, credentials, limits and instrument labels."""

    name = "dhan"
    max_connections = MAX_CONNECTIONS

    def __init__(
        self,
        ws_url: str,
        home: Path,
        *,
        depth_ws_url: str | None = None,
        depth_levels: int = 5,
        ltt_offset: int = wire.IST_OFFSET_SECONDS,
        max_instruments_per_connection: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
        ping_interval: float = PING_INTERVAL,
        open_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        for url in (ws_url, depth_ws_url):
            if url is not None:
                require_websocket_url(url)
        if depth_levels not in (5, 20):
            raise ValueError(f"DHAN_DEPTH_LEVELS must be 5 or 20, not {depth_levels}")
        if depth_levels == 20 and depth_ws_url is None:
            raise ValueError("20-level depth needs DHAN_DEPTH_WS_URL")
        self.ws_url = ws_url
        self.depth_ws_url = depth_ws_url
        self.depth_levels = depth_levels
        self.ltt_offset = ltt_offset
        self.home = home
        default = (
            MAX_DEPTH20_PER_CONNECTION if depth_levels == 20 else MAX_INSTRUMENTS_PER_CONNECTION
        )
        self.max_instruments_per_connection = max_instruments_per_connection or default
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.labels: dict[str, tuple[str, str]] = {}  # key → (exchange, symbol)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.disconnects: collections.Counter[int] = collections.Counter()
        self._env = env
        self._reported: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DhanAdapter:
        options: dict[str, Any] = {
            "ws_url": settings.dhan_ws_url,
            "home": settings.marketpulse_home,
            "depth_ws_url": settings.dhan_depth_ws_url,
            "depth_levels": settings.dhan_depth_levels,
            "ltt_offset": settings.dhan_ltt_offset_seconds,
        }
        options.update(overrides)
        return cls(**options)

    def track(self, tracked: Sequence[TrackedSymbol]) -> None:
        """Learn each key's symbol and exchange (``BSE_INDEX`` for SENSEX on ``IDX_I``)."""
        for item in tracked:
            if item.symbol:
                self.labels[item.token] = (item.exchange, item.symbol)

    async def load_credentials(self) -> DhanCredentials:
        return load_session(self.home, self._env)

    def url_for(self, base: str, credentials: DhanCredentials, version: bool = True) -> str:
        query = {"version": "2"} if version else {}
        query.update(token=credentials.access_token, clientId=credentials.client_id, authType="2")
        return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"

    async def open_socket(self, url: str, client_id: str, what: str) -> ClientConnection:
        def refused(exc: InvalidStatus) -> FeedError:
            status = exc.response.status_code
            if status in (401, 403):
                return FeedAuthError(
                    f"dhan: the {what} refused client {client_id} (HTTP {status}): the access "
                    f"token has expired or is invalid; run `{LOGIN_HINT}`"
                )
            return FeedConnectionError(f"dhan: the {what} answered HTTP {status}")

        return await open_websocket(
            url,
            refused=refused,
            # The URL carries the token: name only the endpoint.
            unreachable=lambda exc: FeedConnectionError(
                f"dhan: cannot connect to the {what}: {exc}"
            ),
            open_timeout=self.open_timeout,
        )

    async def connect(self, credentials: Any) -> DhanConnection:
        if not isinstance(credentials, DhanCredentials):
            raise FeedAuthError(f"dhan: no credentials; run `{LOGIN_HINT}`")
        ws = await self.open_socket(
            self.url_for(self.ws_url, credentials), credentials.client_id, "market feed"
        )
        return DhanConnection(ws, self, credentials)

    def market_open(self, now: float) -> bool:
        """NSE/BSE cash hours: when silence means a stalled feed (spec §5.3 #81)."""
        return session_open(now)

    def report_skip(self, errors: Sequence[str], frame: bytes) -> None:
        for error in errors:
            kind = "".join("N" if c.isdigit() else c for c in error)
            self.skipped[kind] += 1
            if kind not in self._reported and len(self._reported) < 100:
                self._reported.add(kind)
                log.warning(
                    "dhan: skipping malformed packet (%s); message of %d bytes starts %s; "
                    "further problems of this kind are only counted",
                    error,
                    len(frame),
                    frame[:48].hex(),
                )

    def label(self, ticks: list[Tick]) -> list[Tick]:
        labels = self.labels
        if labels:
            for tick in ticks:
                found = labels.get(tick.token)
                if found is not None:
                    tick.exchange, tick.symbol = found
        return ticks


class DhanConnection(FeedConnection):
    """One market-feed socket (plus the 20-level depth socket when enabled)."""

    def __init__(self, ws: ClientConnection, adapter: DhanAdapter, creds: DhanCredentials) -> None:
        self._adapter = adapter
        self._creds = creds
        self._depth: ClientConnection | None = None
        self._depth_keys: set[str] = set()
        self._modes: dict[str, str] = {}
        self._state = wire.InstrumentState(adapter.depth_levels)
        self._last_full: dict[str, Tick] = {}
        self._pending: BaseException | None = None
        self._session = WebSocketSession(ws, "dhan", _main_frame)
        self._session.start(self._session.keep_alive(adapter.ping_interval), "ping")

    # ------------------------------------------------------------------ requests

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        keys = self._valid(tokens)
        wanted = Mode(mode).value
        moving: dict[str, list[str]] = {}
        for key in keys:
            old = self._modes.get(key)
            if old is not None and old != wanted:
                moving.setdefault(old, []).append(key)
        for old, old_keys in moving.items():
            await self._send_all(wire.encode_requests(wire.SUBSCRIBE_CODE[old] + 1, old_keys))
        if keys:
            await self._send_all(wire.encode_requests(wire.SUBSCRIBE_CODE[wanted], keys))
        for key in keys:
            self._modes[key] = wanted
        if self._adapter.depth_levels == 20:
            await self._sync_depth()

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        by_mode: dict[str, list[str]] = {}
        for key in tokens:
            mode = self._modes.pop(key, None)
            if mode is not None:
                by_mode.setdefault(mode, []).append(key)
        for mode, keys in by_mode.items():
            await self._send_all(wire.encode_requests(wire.SUBSCRIBE_CODE[mode] + 1, keys))
        if self._adapter.depth_levels == 20:
            await self._sync_depth()

    def _valid(self, tokens: Sequence[str]) -> list[str]:
        keys = []
        for token in tokens:
            try:
                keys.append(wire.make_key(*wire.parse_key(token)))
            except ValueError as exc:
                if "key:" + token not in self._adapter._reported:
                    self._adapter._reported.add("key:" + token)
                    log.warning("dhan: not subscribing %r: %s", token, exc)
        return keys

    async def _sync_depth(self) -> None:
        """Keep the depth socket's subscriptions equal to the full-mode NSE instruments."""
        wanted = {
            k
            for k, m in self._modes.items()
            if m == "full" and k.partition(wire.SEPARATOR)[0] in DEPTH20_SEGMENTS
        }
        wanted = set(sorted(wanted)[:MAX_DEPTH20_PER_CONNECTION])
        if wanted and self._depth is None:
            adapter = self._adapter
            assert adapter.depth_ws_url is not None
            url = adapter.url_for(adapter.depth_ws_url, self._creds, version=False)
            self._depth = await adapter.open_socket(url, self._creds.client_id, "depth socket")
            self._session.start(
                self._session.read(self._depth, "depth socket", _depth_frame), "depth"
            )
        if self._depth is None:
            return
        gone = sorted(self._depth_keys - wanted)
        new = sorted(wanted - self._depth_keys)
        if gone:
            await self._send_all(wire.encode_requests(wire.DEPTH20 + 1, gone, 50), self._depth)
        if new:
            await self._send_all(wire.encode_requests(wire.DEPTH20, new, 50), self._depth)
        self._depth_keys = wanted

    async def _send_all(self, messages: list[str], ws: ClientConnection | None = None) -> None:
        for message in messages:
            await self._session.send(message, ws)

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> list[Tick]:
        if self._pending is not None:
            raise self._pending
        return self._decode(await self._session.frames())

    def _decode(self, frames: list[Frame]) -> list[Tick]:
        adapter = self._adapter
        tap = adapter.frame_tap
        state = self._state
        offset = adapter.ltt_offset
        out: list[Tick] = []
        for ts_recv, from_depth, frame in frames:
            if tap is not None:
                tap(ts_recv, frame)
            if isinstance(frame, str):
                adapter.report_skip([f"unexpected text message {frame[:80]!r}"], frame.encode())
                continue
            if from_depth:
                decoded = wire.decode_depth_message(frame)
                ticks = adapter.label(state.depth(decoded, self._last_full))
            else:
                decoded = wire.decode_message(frame, ts_recv, offset)
                ticks = adapter.label(state.apply(decoded))
                for tick in ticks:
                    if tick.mode == "full":
                        self._last_full[tick.token] = tick
            if decoded.errors:
                adapter.report_skip(decoded.errors, frame)
            out.extend(ticks)
            if decoded.disconnect is not None:
                adapter.disconnects[decoded.disconnect] += 1
                self._pending = disconnect_error(
                    decoded.disconnect, self._creds.client_id, from_depth
                )
                log.warning("%s", self._pending)
                if not out:
                    raise self._pending
                break
        return out

    async def close(self) -> None:
        await self._session.stop()
        for ws in (self._session.ws, self._depth):
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.send(wire.encode_disconnect_request())
                await ws.close()

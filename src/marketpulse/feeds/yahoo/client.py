"""The Yahoo Finance streamer behind the shared feed contract.

:class:`YahooAdapter` knows the streamer's limits — 100 symbols per connection, counted
cumulatively by the server, extra ones silently dropped (spec §A2) — and the endpoint; the shared
:class:`~marketpulse.feeds.base.FeedSupervisor` pools connections, reconnects and resubscribes.
:class:`YahooConnection` speaks the protocol on one socket:

- no login, cookie or crumb: the socket is opened as is (spec §A1);
- requests are ``{"subscribe": [...]}`` / ``{"unsubscribe": [...]}``; only new symbols are sent
  (the server counts every subscribed symbol towards the 100) and, like yfinance's async client,
  the connection re-sends its whole set every ``resubscribe_interval`` seconds, so a server that
  silently forgot a subscription is corrected without a reconnect;
- Yahoo sends nothing while the market is quiet and has no heartbeat, so the connection pings
  every ``ping_interval`` and reports each pong as an empty batch: that is what satisfies the
  supervisor's heartbeat watchdog, and a socket that stops answering is reconnected;
- frames of either envelope are decoded by :func:`~marketpulse.feeds.yahoo.wire.decode_frame`;
  malformed ones are counted per kind and logged once with a sample; nothing raises.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedConnection, FeedConnectionError
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_session import (
    Frame,
    WebSocketSession,
    open_websocket,
    require_websocket_url,
    stamped,
)
from marketpulse.feeds.yahoo import wire
from marketpulse.model import Mode, Tick
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

MAX_SYMBOLS_PER_CONNECTION: Final = 100
PING_INTERVAL: Final = 5.0
_INDIAN: Final = frozenset({"NSE", "BSE", "NSE_INDEX", "BSE_INDEX"})


class YahooAdapter(FeedAdapter):
    """The ``yahoo`` feed: endpoint, limits, labels from resolution and skip counters."""

    name = "yahoo"
    max_instruments_per_connection = MAX_SYMBOLS_PER_CONNECTION

    def __init__(
        self,
        ws_url: str,
        *,
        max_connections: int = 10,
        max_instruments_per_connection: int = MAX_SYMBOLS_PER_CONNECTION,
        ping_interval: float = PING_INTERVAL,
        resubscribe_interval: float = 15.0,
        open_timeout: float = 10.0,
    ) -> None:
        require_websocket_url(ws_url, "YAHOO_WS_URL")
        if not 1 <= max_instruments_per_connection <= MAX_SYMBOLS_PER_CONNECTION:
            raise ValueError(
                f"Yahoo serves at most {MAX_SYMBOLS_PER_CONNECTION} symbols per connection"
            )
        self.ws_url = ws_url
        self.max_connections = max_connections
        self.max_instruments_per_connection = max_instruments_per_connection
        self.ping_interval = ping_interval
        self.resubscribe_interval = resubscribe_interval
        self.open_timeout = open_timeout
        self.labels: dict[str, tuple[str, str]] = {}  # Yahoo id → (exchange, canonical symbol)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.ignored = 0
        self._reported: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> YahooAdapter:
        options: dict[str, Any] = {
            "ws_url": settings.yahoo_ws_url,
            "max_connections": settings.yahoo_max_connections,
            "resubscribe_interval": settings.yahoo_resubscribe_seconds,
        }
        options.update(overrides)
        return cls(**options)

    def track(self, tracked: Sequence[TrackedSymbol]) -> None:
        """Learn the canonical symbol each Yahoo id was resolved to."""
        for item in tracked:
            if item.symbol:
                self.labels[item.token] = (item.exchange, item.symbol)

    async def connect(self, credentials: Any) -> YahooConnection:
        del credentials  # Yahoo's streamer needs none
        ws = await open_websocket(
            self.ws_url,
            refused=lambda exc: FeedConnectionError(
                f"yahoo: the streamer answered HTTP {exc.response.status_code}"
            ),
            unreachable=lambda exc: FeedConnectionError(
                f"yahoo: cannot connect to {self.ws_url}: {exc}"
            ),
            open_timeout=self.open_timeout,
            compression="deflate",  # text frames: keep the library's default
        )
        return YahooConnection(ws, self)

    def market_open(self, now: float) -> bool:
        """Whether silence is suspicious: always for crypto (it trades around the clock),
        during NSE hours for Indian instruments; never otherwise (other venues' hours are not
        modelled, so their quiet is not called a stall)."""
        exchanges = {exchange for exchange, _ in self.labels.values()}
        if "CRYPTO" in exchanges:
            return True
        return bool(exchanges & _INDIAN) and session_open(now)

    def report_skip(self, error: str, frame: str | bytes) -> None:
        kind = error.partition(":")[0]
        self.skipped[kind] += 1
        if kind not in self._reported and len(self._reported) < 100:
            self._reported.add(kind)
            log.warning(
                "yahoo: skipping a malformed frame (%s); it starts %r; further problems of this "
                "kind are only counted",
                error,
                frame[:120],
            )

    def label(self, tick: Tick) -> Tick:
        found = self.labels.get(tick.token)
        if found is not None:
            tick.exchange, tick.symbol = found
        return tick


class YahooConnection(FeedConnection):
    """One streamer socket: its subscriptions, a reader, a pinger and a re-subscriber."""

    def __init__(self, ws: ClientConnection, adapter: YahooAdapter) -> None:
        self._adapter = adapter
        self._symbols: dict[str, None] = {}  # subscribed, in order
        self._session = WebSocketSession(ws, "yahoo", stamped)
        self._session.start(self._session.keep_alive(adapter.ping_interval), "ping")
        if adapter.resubscribe_interval > 0:
            self._session.start(self._resubscribe(), "resubscribe")

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        """Subscribe the symbols not yet subscribed; Yahoo has one level of detail, so the
        mode does not change what is asked for (ticks are ``quote`` mode)."""
        del mode
        new = [t for t in dict.fromkeys(tokens) if t and t not in self._symbols]
        if new:
            await self._session.send(wire.encode_subscribe(new))
            self._symbols.update(dict.fromkeys(new))

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        gone = [t for t in dict.fromkeys(tokens) if t in self._symbols]
        if gone:
            await self._session.send(wire.encode_unsubscribe(gone))
            for token in gone:
                del self._symbols[token]

    async def receive(self) -> list[Tick]:
        return self._decode(await self._session.frames())

    def _decode(self, frames: list[Frame]) -> list[Tick]:
        adapter = self._adapter
        tap = adapter.frame_tap
        labels = adapter.labels
        decode = wire.decode_frame
        out: list[Tick] = []
        for ts_recv, frame in frames:
            if tap is not None:
                tap(ts_recv, frame)
            decoded = decode(frame, ts_recv)
            tick = decoded.tick
            if tick is not None:
                out.append(adapter.label(tick) if labels else tick)
            elif decoded.error is not None:
                adapter.report_skip(decoded.error, frame)
            else:
                adapter.ignored += 1
        return out

    async def _resubscribe(self) -> None:
        """Re-send the whole set now and then (what yfinance's async client does every 15 s)."""
        interval = self._adapter.resubscribe_interval
        with contextlib.suppress(ConnectionClosed, FeedConnectionError):
            while True:
                await asyncio.sleep(interval)
                if self._symbols:
                    await self._session.send(wire.encode_subscribe(self._symbols))

    async def close(self) -> None:
        await self._session.close()

"""The Fyers v3 HSM data socket behind the shared feed contract.

:class:`FyersAdapter` knows the broker's limits (5000 symbols per API key, ≤ 1500 topics per
subscribe frame — spec §0), where the session is kept, and how a Fyers symbol becomes topics
(the symbol-token REST lookup, cached for the adapter's life). The shared supervisor does
pooling, reconnects, resubscription and watchdogs. :class:`FyersConnection` speaks the protocol:

- login is *in-band*: after the upgrade we send the auth frame (the ``hsm_key`` claim of the
  access token) and the lite/full mode frame, and wait for the auth response; ``'N'`` (or an
  expired/undecodable token, checked before connecting) is a :class:`FeedAuthError` with the
  login hint, because retrying the same token cannot help;
- every data message is merged into a per-topic state (:class:`~.wire.HsmState`); updates carry
  only changed fields, so each tick is built from the merged snapshot, never from the delta;
- every N-th data message (N from the auth response) is acknowledged;
- the HSM ping ``00 01 0B`` goes out every ``ping_interval``; the server never answers it, so
  the same timer sends a WebSocket ping and its pong is what proves a quiet socket alive to the
  supervisor's heartbeat watchdog (an empty batch);
- server error messages (type 51, e.g. 51001 symbol limit) and refused requests are logged and
  kept in ``adapter.server_errors``; malformed frames are counted per reason, logged once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

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
from marketpulse.feeds.fyers import wire
from marketpulse.feeds.fyers.credentials import LOGIN_HINT, FyersCredentials, load_session
from marketpulse.feeds.fyers.rest import FyersRestClient
from marketpulse.feeds.fyers.topics import SymbolTopics, TopicError, topics_for
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.websocket_close import close_reason
from marketpulse.feeds.websocket_session import (
    Frame,
    WebSocketSession,
    open_websocket,
    require_websocket_url,
    stamped,
)
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

MAX_SYMBOLS: Final = 5000


class FyersAdapter(FeedAdapter):
    """The ``fyers`` feed: endpoints, credentials, limits and the symbol → topic cache."""

    name = "fyers"

    def __init__(
        self,
        ws_url: str,
        api_url: str,
        home: Path,
        *,
        public_url: str | None = None,
        lite: bool = False,
        max_instruments_per_connection: int = MAX_SYMBOLS,
        max_connections: int = 1,
        ping_interval: float = 10.0,
        open_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        require_websocket_url(ws_url, "FYERS_WS_URL")
        self.ws_url = ws_url
        self.api_url = api_url
        self.public_url = public_url or api_url
        self.home = home
        self.lite = lite
        self.max_instruments_per_connection = max_instruments_per_connection
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self._env = env
        self.topics: dict[str, SymbolTopics] = {}
        self.index_mapping: dict[str, str] | None = None
        self.unknown: set[str] = set()
        self.skipped: collections.Counter[str] = collections.Counter()
        self.server_errors: collections.deque[str] = collections.deque(maxlen=20)
        self._reported: set[str] = set()
        self._lookup = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FyersAdapter:
        options: dict[str, Any] = {
            "ws_url": settings.fyers_ws_url,
            "api_url": settings.fyers_api_url,
            "home": settings.marketpulse_home,
            "public_url": settings.fyers_public_url,
            "lite": settings.fyers_lite_mode,
            "max_instruments_per_connection": settings.fyers_max_symbols,
            "max_connections": settings.fyers_max_connections,
            "ping_interval": settings.fyers_ping_interval_seconds,
        }
        options.update(overrides)
        return cls(**options)

    async def load_credentials(self) -> FyersCredentials:
        credentials = load_session(self.home, self._env)
        credentials.check_fresh()
        return credentials

    def market_open(self, now: float) -> bool:
        """NSE/BSE cash hours: when silence means a stalled feed (MCX runs longer)."""
        return session_open(now)

    # ------------------------------------------------------------------ symbols → topics

    async def resolve(
        self, symbols: Sequence[str], credentials: FyersCredentials
    ) -> list[SymbolTopics]:
        """Topics of ``symbols``, looking up the ones not cached; unknown ones are reported
        (once) and left out."""
        async with self._lookup:
            missing = [s for s in dict.fromkeys(symbols) if s not in self.topics]
            missing = [s for s in missing if s not in self.unknown]
            if missing:
                await self._look_up(missing, credentials)
        return [self.topics[s] for s in symbols if s in self.topics]

    async def _look_up(self, symbols: list[str], credentials: FyersCredentials) -> None:
        async with FyersRestClient(self.api_url, credentials, public_url=self.public_url) as rest:
            if self.index_mapping is None and any(s.endswith("-INDEX") for s in symbols):
                try:
                    self.index_mapping = await rest.index_mapping()
                except Exception as exc:  # the built-in table and the fallback still work
                    log.warning("fyers: index name mapping unavailable (%s); using defaults", exc)
                    self.index_mapping = {}
            valid, invalid = await rest.symbol_tokens(symbols)
        for symbol, fytoken in valid.items():
            try:
                self.topics[symbol] = topics_for(symbol, fytoken, self.index_mapping)
            except TopicError as exc:
                invalid.append(symbol)
                log.warning("fyers: %s", exc)
        invalid += [s for s in symbols if s not in valid and s not in invalid]
        if invalid:
            self.unknown.update(invalid)
            log.warning(
                "fyers: %d symbol(s) unknown to Fyers are not streamed: %s",
                len(invalid),
                ", ".join(invalid[:10]),
            )

    # ------------------------------------------------------------------ connecting

    async def connect(self, credentials: Any) -> FyersConnection:
        if not isinstance(credentials, FyersCredentials):
            raise FeedAuthError(f"fyers: no session; run `{LOGIN_HINT}`")
        claims = credentials.check_fresh()
        ws = await open_websocket(
            self.ws_url,
            refused=_refused,
            unreachable=lambda exc: FeedConnectionError(
                f"fyers: cannot connect to {self.ws_url}: {exc}"
            ),
            open_timeout=self.open_timeout,
        )
        state = wire.HsmState(lite=self.lite)
        try:
            await ws.send(wire.encode_auth(claims.hsm_key))
            await ws.send(wire.encode_mode(self.lite))
            async with asyncio.timeout(self.open_timeout):
                await self._await_auth(ws, state)
        except BaseException:
            await ws.close()
            raise
        return FyersConnection(ws, self, credentials, state)

    async def _await_auth(self, ws: ClientConnection, state: wire.HsmState) -> None:
        try:
            while True:
                frame = await ws.recv()
                ts_recv = time.time_ns()
                if self.frame_tap is not None:
                    self.frame_tap(ts_recv, frame)
                if isinstance(frame, str):
                    continue
                decoded = wire.decode_frame(frame, ts_recv, state)
                message = decoded.message
                if isinstance(message, wire.CustomMessage):
                    self.report_custom(message)
                    if message.ref_type == wire.AUTH:
                        raise FeedAuthError(
                            f"fyers: login refused ({message.code}: {message.message}); "
                            f"run `{LOGIN_HINT}`"
                        )
                if isinstance(message, wire.AuthResponse):
                    if not message.ok:
                        raise FeedAuthError(
                            "fyers: the data socket rejected the access token's hsm_key "
                            "(authentication failed, SDK code 11001): the token has expired or "
                            f"was revoked; run `{LOGIN_HINT}`"
                        )
                    return
        except ConnectionClosed as exc:
            raise FeedConnectionError(f"fyers: closed during login ({close_reason(exc)})") from exc

    # ------------------------------------------------------------------ reporting

    def report_skip(self, reason: str, frame: bytes) -> None:
        self.skipped[reason] += 1
        if reason not in self._reported:
            self._reported.add(reason)
            log.warning(
                "fyers: skipping malformed data (%s), e.g. %d bytes: %s; further problems of "
                "this kind are only counted",
                reason,
                len(frame),
                frame[:64].hex(),
            )

    def report_custom(self, message: wire.CustomMessage) -> None:
        detail = f"{message.code}: {message.message}"
        self.server_errors.append(detail)
        if message.code == wire.SYMBOL_LIMIT_CODE:
            log.error(
                "fyers: the server refused symbols (%s); lower SUBSCRIBE or FYERS_MAX_SYMBOLS "
                "to your plan's limit",
                detail,
            )
        else:
            log.warning("fyers: server message %s (request type %s)", detail, message.ref_type)

    def report_refused(self, message: wire.StatusResponse) -> None:
        detail = f"request type {message.kind} refused ('N')"
        self.server_errors.append(detail)
        log.warning("fyers: %s", detail)


def _refused(exc: InvalidStatus) -> FeedError:
    status = exc.response.status_code
    if status in (401, 403):
        return FeedAuthError(
            f"fyers: the data socket refused the connection (HTTP {status}); run `{LOGIN_HINT}`"
        )
    return FeedConnectionError(f"fyers: connect refused with HTTP {status}")


class FyersConnection(FeedConnection):
    """One authenticated data socket: subscriptions by topic, acks, pings, batched decoding."""

    def __init__(
        self,
        ws: ClientConnection,
        adapter: FyersAdapter,
        credentials: FyersCredentials,
        state: wire.HsmState,
    ) -> None:
        self._adapter = adapter
        self._credentials = credentials
        self.state = state
        self._subscribed: dict[str, list[str]] = {}  # symbol → topics on this socket
        self._session = WebSocketSession(ws, "fyers", stamped)
        # The server never answers the HSM ping; a WebSocket pong proves a quiet socket alive.
        interval = adapter.ping_interval
        pinger = self._session.keep_alive(
            interval, heartbeat=wire.PING_FRAME, pong_timeout=interval
        )
        self._session.start(pinger, "ping")

    # ------------------------------------------------------------------ requests

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        # A lite socket carries LTP only (and no depth), whatever was asked.
        mode_name = Mode.LTP.value if self._adapter.lite else Mode(mode).value
        resolved = await self._adapter.resolve(tokens, self._credentials)
        add: list[str] = []
        drop: list[str] = []
        state = self.state
        for item in resolved:
            wanted = item.for_mode(mode_name)
            current = self._subscribed.get(item.symbol, [])
            add += [t for t in wanted if t not in current]
            drop += [t for t in current if t not in wanted]
            for topic in wanted:
                state.labels[topic] = item.symbol
            state.modes[item.symbol] = mode_name
            self._subscribed[item.symbol] = wanted
        for chunk in wire.chunks(drop):
            await self._session.send(wire.encode_unsubscribe(chunk))
        for chunk in wire.chunks(add):
            await self._session.send(wire.encode_subscribe(chunk))

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        topics: list[str] = []
        for symbol in tokens:
            topics += self._subscribed.pop(symbol, [])
            self.state.modes.pop(symbol, None)
        for chunk in wire.chunks(topics):
            await self._session.send(wire.encode_unsubscribe(chunk))

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> list[Tick]:
        return await self._decode(await self._session.frames())

    async def _decode(self, frames: list[Frame]) -> list[Tick]:
        adapter = self._adapter
        tap = adapter.frame_tap
        state = self.state
        ticks: list[Tick] = []
        acks: list[int] = []
        decode = wire.decode_frame
        for ts_recv, frame in frames:
            if tap is not None:
                tap(ts_recv, frame)
            if isinstance(frame, str):
                adapter.report_skip("text frame", frame.encode())
                continue
            out = decode(frame, ts_recv, state)
            ticks += out.ticks
            if out.ack is not None:
                acks.append(out.ack)
            if out.errors:
                adapter.report_skip(out.errors[0], frame)
            elif out.skipped:
                adapter.report_skip("update for a topic without a snapshot", frame)
            message = out.message
            if isinstance(message, wire.CustomMessage):
                adapter.report_custom(message)
            elif isinstance(message, wire.StatusResponse) and not message.ok:
                adapter.report_refused(message)
        for number in acks:
            await self._session.send(wire.encode_ack(number))
        return ticks

    async def close(self) -> None:
        await self._session.close()

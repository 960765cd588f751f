"""The quote service: current prices for any symbol, whichever provider has them.

``/api/quotes`` and ``/api/indices`` ask :class:`MarketDataService`. A symbol is answered from
its live snapshot (written by ingest) when that is younger than ``MARKET_DATA_CACHE_DURATION``;
otherwise from the service's own cache of REST quotes when that is as young; otherwise the
providers of ``QUOTE_PROVIDERS`` are asked in order through their REST quote API
(``SPEC.quotes``), each behind its own circuit breaker. When nothing fresh can be had, the best
older value is answered with ``stale`` set once it is older than ``MARKET_DATA_STALE_THRESHOLD``,
and a symbol with no value at all is reported missing with the typed reason.

Symbols asked for are remembered: a background task refreshes them every
``MARKET_DATA_UPDATE_INTERVAL`` and, with ``MARKET_DATA_SUBSCRIBE``, asks the running feeds to
stream them (through the Redis control stream, like ``POST /subscribe``). A symbol nobody asked
for within the stale threshold is dropped and, if this service subscribed it, unsubscribed.

The cache and the remembered symbols live in this process: each API replica keeps its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.bus.control import ControlCommand, send_command
from marketpulse.bus.market_data import MarketDataRepository
from marketpulse.bus.status import read_reports
from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedError
from marketpulse.feeds.quotes import QuoteProviderDownError, QuoteRateLimitedError
from marketpulse.feeds.registry import FeedSpec, UnknownFeedError, feed_spec, lookup_symbols
from marketpulse.model import Tick
from marketpulse.quote_service.breaker import CircuitBreaker
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.subscriptions import TrackedSymbol, read_subscriptions

log = logging.getLogger(__name__)

_SUBSCRIBE_RETRY_SECONDS = 1.0


class Origin(StrEnum):
    """Where an answered price came from."""

    LIVE = "live"
    """The feed's snapshot in Redis."""
    REST = "rest"
    """A provider's REST quote API (fetched now or cached)."""


class QuoteErrorKind(StrEnum):
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    UNKNOWN_SYMBOL = "unknown_symbol"
    PROVIDER_DOWN = "provider_down"
    NO_PROVIDER = "no_provider"


class QuoteError(Exception):
    """Why a symbol has no price; ``kind`` is machine-readable, the message says what to do."""

    kind: QuoteErrorKind = QuoteErrorKind.PROVIDER_DOWN

    def __init__(
        self, message: str, provider: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retry_after = retry_after

    def to_builtins(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind.value, "detail": str(self)}
        if self.provider is not None:
            body["provider"] = self.provider
        if self.retry_after is not None:
            body["retry_after"] = round(self.retry_after, 3)
        return body


class QuoteAuthError(QuoteError):
    kind = QuoteErrorKind.AUTH


class QuoteRateLimitError(QuoteError):
    kind = QuoteErrorKind.RATE_LIMIT


class UnknownSymbolError(QuoteError):
    kind = QuoteErrorKind.UNKNOWN_SYMBOL


class ProviderDownError(QuoteError):
    kind = QuoteErrorKind.PROVIDER_DOWN


class NoQuoteProviderError(QuoteError):
    kind = QuoteErrorKind.NO_PROVIDER


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """One answered price: the tick, where it came from and how old it is."""

    tick: Tick
    origin: Origin
    observed_at: float
    """Epoch seconds: when the feed received the tick, or when the REST quote was fetched."""
    age_seconds: float
    stale: bool

    def to_builtins(self) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.to_builtins(self.tick)
        body.update(origin=self.origin.value, age_seconds=round(self.age_seconds, 3),
                    stale=self.stale)  # fmt: skip
        return body


@dataclass(slots=True)
class QuoteAnswer:
    """Prices for the symbols that have one; the typed reason for each that has none."""

    quotes: dict[str, PriceQuote] = field(default_factory=dict)
    errors: dict[str, QuoteError] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return list(self.errors)


@dataclass(slots=True)
class _Cached:
    tick: Tick
    fetched_at: float


def observed_at(tick: Tick, fallback: float) -> float:
    """When a live tick was seen, in epoch seconds (receive time, else exchange time)."""
    if tick.ts_recv is not None:
        return tick.ts_recv / 1e9
    if tick.ts_exchange is not None:
        return tick.ts_exchange / 1e3
    return fallback


class MarketDataService:
    """Provider-agnostic prices with freshness, staleness, background refresh and eviction.

    ``clock`` (epoch seconds) is injectable so tests can move time; ``providers`` defaults to
    ``QUOTE_PROVIDERS`` or, when that is empty, the ``FEEDS`` that have a REST quote API.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool | None,
        settings: Settings,
        *,
        providers: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._repo = MarketDataRepository(redis, settings)
        self.providers: dict[str, FeedSpec] = {}
        wanted = list(providers) if providers is not None else settings.quote_providers
        for name in wanted or settings.feeds:
            try:
                spec = feed_spec(name)
            except UnknownFeedError as exc:
                if wanted:
                    raise
                log.debug("quote service: %s", exc)
                continue
            if spec.quotes is None:
                if wanted:
                    raise UnknownFeedError(f"provider {name!r} has no REST quote API")
                continue
            self.providers[name] = spec
        self.breakers = {
            name: CircuitBreaker(
                settings.quote_breaker_failures, settings.quote_breaker_reset_seconds, clock
            )
            for name in self.providers
        }
        self._blocked_until: dict[str, float] = {}
        self._cache: dict[str, _Cached] = {}
        self.requested: dict[str, float] = {}
        """Symbol → when it was last asked for (epoch seconds)."""
        self.subscribed: set[str] = set()
        """Symbols this service asked the feeds to stream."""
        self._pending: set[str] = set()
        """Answered symbols not yet known to stream (no feed was running, or Redis failed)."""
        self._pending_tried = float("-inf")
        self._fetch_lock = asyncio.Lock()

    # ------------------------------------------------------------------ public API

    async def get_symbol_prices(self, symbols: Sequence[str]) -> QuoteAnswer:
        """Prices of canonical ``symbols`` (validated by the caller), freshest source first."""
        now = self._clock()
        wanted = list(dict.fromkeys(symbols))
        new = [s for s in wanted if s not in self.requested]
        for symbol in wanted:
            self.requested[symbol] = now
        answer = QuoteAnswer()
        live = await self._live(wanted, answer)
        due: list[str] = []
        for symbol in wanted:
            best = self._best(symbol, live.get(symbol), now)
            if best is not None and best.age_seconds <= self._settings.market_data_cache_duration:
                answer.quotes[symbol] = best
            else:
                due.append(symbol)
        if due:
            errors = await self._fetch(due)
            now = self._clock()
            for symbol in due:
                best = self._best(symbol, live.get(symbol), now)
                if best is not None:
                    answer.quotes[symbol] = best
                else:
                    answer.errors[symbol] = errors.get(symbol) or NoQuoteProviderError(
                        f"{symbol}: no live data and no provider with a REST quote API "
                        "(set QUOTE_PROVIDERS or run a feed that streams it)"
                    )
        if self._settings.market_data_subscribe:
            self._pending.update(s for s in new if s in answer.quotes)
            if time.monotonic() - self._pending_tried >= _SUBSCRIBE_RETRY_SECONDS:
                await self._subscribe_pending(answer)
        # Keep the caller's order.
        answer.quotes = {s: answer.quotes[s] for s in wanted if s in answer.quotes}
        return answer

    async def get_market_indices(self, indices: Sequence[str]) -> QuoteAnswer:
        """Index levels (``NIFTY50.NSE_INDEX``, ``SENSEX.BSE_INDEX``); the caller checks that
        each symbol is an index."""
        return await self.get_symbol_prices(indices)

    async def subscribe_to_symbols(self, symbols: Sequence[str]) -> QuoteAnswer:
        """Start tracking ``symbols`` (refreshed in the background, streamed when a feed runs)
        and answer their prices now."""
        return await self.get_symbol_prices(symbols)

    async def unsubscribe_from_symbols(self, symbols: Sequence[str]) -> None:
        """Stop tracking ``symbols``: no more refreshes, and the feeds stop streaming the ones
        this service subscribed."""
        await self._drop(list(symbols))

    async def refresh_once(self) -> dict[str, int]:
        """Drop symbols nobody asked for within the stale threshold, then refetch the rest that
        have no fresh live snapshot. Returns counts, for logs and tests."""
        now = self._clock()
        threshold = self._settings.market_data_stale_threshold
        expired = [s for s, at in self.requested.items() if now - at > threshold]
        await self._drop(expired)
        symbols = list(self.requested)
        answer = QuoteAnswer()
        live = await self._live(symbols, answer)
        due = [
            s
            for s in symbols
            if s not in live
            or now - observed_at(live[s], now) > self._settings.market_data_cache_duration
        ]
        errors = await self._fetch(due) if due else {}
        if self._settings.market_data_subscribe:
            await self._subscribe_pending(answer)
        for warning in answer.warnings:
            log.warning("quote service refresh: %s", warning)
        return {"dropped": len(expired), "refreshed": len(due) - len(errors),
                "failed": len(errors)}  # fmt: skip

    async def run(self) -> None:
        """Refresh requested symbols every ``MARKET_DATA_UPDATE_INTERVAL`` until cancelled."""
        while True:
            await asyncio.sleep(self._settings.market_data_update_interval)
            try:
                counts = await self.refresh_once()
            except Exception:
                log.exception("quote service: background refresh failed")
                continue
            if counts["failed"] or counts["dropped"]:
                log.info("quote service refresh: %s", counts)

    def status(self) -> dict[str, Any]:
        """Providers with their breaker state, and how many symbols are tracked and cached."""
        return {
            "providers": {
                name: {"breaker": b.state.value, "retry_in": round(b.retry_in, 3)}
                for name, b in self.breakers.items()
            },
            "requested": len(self.requested),
            "cached": len(self._cache),
            "subscribed": len(self.subscribed),
        }

    # ------------------------------------------------------------------ internals

    async def _live(self, symbols: list[str], answer: QuoteAnswer) -> dict[str, Tick]:
        try:
            return await self._repo.latest_many(symbols)
        except (RedisError, OSError) as exc:
            answer.warnings.append(f"live snapshots unavailable (Redis: {exc}); using REST")
            return {}

    def _best(self, symbol: str, live: Tick | None, now: float) -> PriceQuote | None:
        """The younger of the live snapshot and the cached REST quote."""
        candidates: list[tuple[float, Tick, Origin]] = []
        if live is not None:
            candidates.append((observed_at(live, now), live, Origin.LIVE))
        cached = self._cache.get(symbol)
        if cached is not None:
            candidates.append((cached.fetched_at, cached.tick, Origin.REST))
        if not candidates:
            return None
        at, tick, origin = max(candidates, key=lambda c: c[0])
        age = max(0.0, now - at)
        stale = age > self._settings.market_data_stale_threshold
        return PriceQuote(tick, origin, at, age, stale)

    async def _fetch(self, symbols: list[str]) -> dict[str, QuoteError]:
        """Ask the providers in order for ``symbols``; cache what they answer and return why
        the others have no fresh price. One fetch at a time, so concurrent requests for the
        same symbols wait for the first and find it cached."""
        async with self._fetch_lock:
            now = self._clock()
            duration = self._settings.market_data_cache_duration
            remaining = [
                s
                for s in symbols
                if s not in self._cache or now - self._cache[s].fetched_at > duration
            ]
            errors: dict[str, QuoteError] = {}
            for name, spec in self.providers.items():
                if not remaining:
                    break
                answered = await self._ask(name, spec, remaining, errors)
                remaining = [s for s in remaining if s not in answered]
            return {s: e for s, e in errors.items() if s in remaining}

    async def _ask(
        self, name: str, spec: FeedSpec, symbols: list[str], errors: dict[str, QuoteError]
    ) -> set[str]:
        def fail(error: QuoteError, which: Sequence[str]) -> set[str]:
            for symbol in which:
                # An unknown symbol at one provider says less than a failure at another.
                if symbol not in errors or errors[symbol].kind is QuoteErrorKind.UNKNOWN_SYMBOL:
                    errors[symbol] = error
            return set()

        now = self._clock()
        blocked = self._blocked_until.get(name, 0.0) - now
        if blocked > 0:
            limited = QuoteRateLimitError(f"{name}: rate limited; retry in {blocked:.1f} s",
                                          name, blocked)  # fmt: skip
            return fail(limited, symbols)
        breaker = self.breakers[name]
        if not breaker.allow():
            return fail(ProviderDownError(
                f"{name}: failing repeatedly, not asked for {breaker.retry_in:.1f} s more "
                "(circuit breaker open)", name, breaker.retry_in), symbols)  # fmt: skip
        try:
            instruments, unknown = await self._resolve(name, symbols)
        except DATABASE_ERRORS as exc:
            breaker.success()  # not the provider's fault; release a half-open trial
            lookup = ProviderDownError(f"{name}: cannot look up instruments ({exc})", name)
            return fail(lookup, symbols)
        for symbol in unknown:
            fail(UnknownSymbolError(
                f"{name} does not know {symbol}; run `marketpulse instruments sync --provider "
                f"{name}` or check the spelling", name), [symbol])  # fmt: skip
        if not instruments:
            breaker.success()
            return set()
        assert spec.quotes is not None
        try:
            ticks = await spec.quotes(self._settings, instruments)
        except FeedAuthError as exc:
            breaker.failure()
            return fail(QuoteAuthError(str(exc), name), [i.symbol for i in instruments])
        except QuoteRateLimitedError as exc:
            wait = exc.retry_after if exc.retry_after is not None else 1.0
            self._blocked_until[name] = self._clock() + wait
            breaker.success()
            return fail(QuoteRateLimitError(str(exc), name, wait), [i.symbol for i in instruments])
        except (QuoteProviderDownError, FeedError, OSError) as exc:
            breaker.failure()
            return fail(ProviderDownError(f"{name}: {exc}", name), [i.symbol for i in instruments])
        breaker.success()
        fetched_at = self._clock()
        answered: set[str] = set()
        for tick in ticks:
            if tick.symbol is not None:
                self._cache[tick.symbol] = _Cached(tick, fetched_at)
                answered.add(tick.symbol)
        for instrument in instruments:
            if instrument.symbol not in answered:
                unanswered = UnknownSymbolError(
                    f"{name} returned no quote for {instrument.symbol}", name
                )
                fail(unanswered, [instrument.symbol])
        return answered

    async def _resolve(
        self, name: str, symbols: list[str]
    ) -> tuple[list[TrackedSymbol], list[str]]:
        return await lookup_symbols(name, self._settings, self._pool, symbols, "quote")

    async def _subscribe_pending(self, answer: QuoteAnswer) -> None:
        """Ask the running feeds to stream the pending symbols that no feed streams yet; they
        stay pending while no feed runs or Redis fails, and are retried."""
        self._pending_tried = time.monotonic()
        if not self._pending:
            return
        try:
            running = [r.name for r in await read_reports(self._redis, self._settings)]
            if not running:
                return
            tracked = {t.symbol for t in await read_subscriptions(self._redis, self._settings)}
            fresh = sorted(s for s in self._pending if s not in tracked)
            if fresh:
                command = ControlCommand("subscribe", fresh, "quote")
                await send_command(self._redis, self._settings, command, running)
        except (RedisError, OSError) as exc:
            answer.warnings.append(f"could not subscribe {len(self._pending)} symbols ({exc})")
            return
        self.subscribed.update(fresh)
        self._pending.clear()

    async def _drop(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self.requested.pop(symbol, None)
            self._cache.pop(symbol, None)
            self._pending.discard(symbol)
        ours = [s for s in symbols if s in self.subscribed]
        if not ours:
            return
        try:
            running = [r.name for r in await read_reports(self._redis, self._settings)]
            if running:
                command = ControlCommand("unsubscribe", ours, "quote")
                await send_command(self._redis, self._settings, command, running)
        except (RedisError, OSError) as exc:
            log.warning("quote service: could not unsubscribe %s: %s", ", ".join(ours), exc)
            return
        self.subscribed.difference_update(ours)

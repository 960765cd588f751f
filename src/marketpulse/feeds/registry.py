"""Which feeds exist, how to build them, and how to decode their raw frames.

Each feed module exposes ``SPEC: FeedSpec``; this table names the module, so adding a broker is
one line here and nothing else outside its folder. Modules are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.history import HistoryFetcher
from marketpulse.feeds.quotes import QuoteFetcher
from marketpulse.model import Tick
from marketpulse.store.instruments import InstrumentRecord, Progress, lookup_instruments
from marketpulse.subscriptions import TrackedSymbol

FeedPlan = tuple[FeedAdapter, list[TrackedSymbol]]

Resolver = Callable[[str, list[str]], Awaitable[list[TrackedSymbol]]]
"""``resolver(provider, symbols_or_tokens)``: instrument-master lookup that turns canonical
symbols (or broker tokens) into subscriptions; raises ``UnknownInstrumentError`` for unknowns."""


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """Everything the service needs to know about one feed."""

    name: str
    build: Callable[[Settings], FeedAdapter]
    """The adapter, configured from settings (endpoints, credentials location, limits)."""
    startup: Callable[[FeedAdapter, Settings, Resolver], Awaitable[list[TrackedSymbol]]]
    """What to stream at start (usually ``SUBSCRIBE`` resolved through the resolver)."""
    decode: Callable[[bytes | str, int], list[Tick]] | None = None
    """Pure decoder of one raw frame, for ``marketpulse replay``."""
    instruments: Callable[[Settings, Progress | None], Awaitable[list[InstrumentRecord]]] | None = (
        None
    )
    """Download and parse the provider's instrument master, for ``instruments sync``."""
    resolve: Callable[[FeedAdapter, list[str], str], list[TrackedSymbol]] | None = None
    """Symbols → subscriptions without the instrument master (the simulator knows its own
    universe); feeds without it resolve through the instrument master."""
    history: HistoryFetcher | None = None
    """The provider's REST candle history (see :mod:`marketpulse.feeds.history`), for backfill
    and gap repair; ``None`` when the provider has none."""
    quotes: QuoteFetcher | None = None
    """The provider's REST quote API (see :mod:`marketpulse.feeds.quotes`), for the quote
    service's fallback when the live snapshot is missing or old."""


class UnknownFeedError(ValueError):
    """A feed name that does not exist."""


FEEDS: dict[str, str] = {
    "sim": "marketpulse.feeds.simulator.feed",
    "kite": "marketpulse.feeds.kite.feed",
    "angelone": "marketpulse.feeds.angelone.feed",
    "fyers": "marketpulse.feeds.fyers.feed",
    "dhan": "marketpulse.feeds.dhan.feed",
    "paytm": "marketpulse.feeds.paytm.feed",
    "yahoo": "marketpulse.feeds.yahoo.feed",
}


def feed_spec(name: str) -> FeedSpec:
    module_name = FEEDS.get(name)
    if module_name is None:
        raise UnknownFeedError(f"unknown feed {name!r}; available: {', '.join(sorted(FEEDS))}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UnknownFeedError(f"feed {name!r} is not available in this version") from None
    spec = module.SPEC
    assert isinstance(spec, FeedSpec)
    return spec


async def build_feed(name: str, settings: Settings, resolver: Resolver) -> FeedPlan:
    """The adapter for ``name`` and the instruments it streams at start."""
    spec = feed_spec(name)
    adapter = spec.build(settings)
    return adapter, await spec.startup(adapter, settings, resolver)


async def lookup_symbols(
    name: str, settings: Settings, pool: asyncpg.Pool | None, items: Sequence[str],
    mode: str = "full",
) -> tuple[list[TrackedSymbol], list[str]]:  # fmt: skip
    """``items`` as feed ``name`` knows them, and the ones it does not: through the feed's own
    ``resolve`` when it has one (the simulator, Yahoo), else through the instrument master."""
    spec = feed_spec(name)
    if spec.resolve is None:
        if pool is None:
            return [], list(items)
        return await lookup_instruments(pool, name, items, mode)
    adapter = spec.build(settings)
    found: list[TrackedSymbol] = []
    unknown: list[str] = []
    for item in items:
        try:
            found.extend(spec.resolve(adapter, [item], mode))
        except (LookupError, ValueError, FeedError):
            unknown.append(item)
    return found, unknown

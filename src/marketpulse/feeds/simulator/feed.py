"""The simulator as a registered feed: streams its whole universe (or ``SUBSCRIBE``) in full."""

from __future__ import annotations

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.feeds.simulator.adapter import SimulatorAdapter
from marketpulse.model import Mode, SymbolError, normalize_symbol
from marketpulse.subscriptions import TrackedSymbol


class UnknownSimulatedSymbolError(SymbolError):
    """``SUBSCRIBE`` names an instrument the simulator does not have."""


def resolve(adapter: FeedAdapter, items: list[str], mode: str) -> list[TrackedSymbol]:
    """Subscriptions for simulator symbols; unknown ones are an error naming all of them."""
    assert isinstance(adapter, SimulatorAdapter)
    universe = adapter.universe
    wanted = [normalize_symbol(s) for s in items]
    by_symbol = {i.canonical: i for i in universe.instruments}
    unknown = [s for s in wanted if s not in by_symbol]
    if unknown:
        raise UnknownSimulatedSymbolError(
            f"the simulator has no {', '.join(unknown)}; see GET /symbols for its universe"
        )
    return [
        TrackedSymbol(symbol=s, source=adapter.name, token=universe.token_of(s),
                      exchange=by_symbol[s].exchange.value, mode=Mode(mode).value)
        for s in wanted
    ]  # fmt: skip


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` (and ``SYMBOLS_FILE``), or the whole universe when both are empty."""
    assert isinstance(adapter, SimulatorAdapter)
    items = settings.subscribe or [i.canonical for i in adapter.universe.instruments]
    return resolve(adapter, items, settings.subscribe_mode)


SPEC = FeedSpec(name="sim", build=SimulatorAdapter.from_settings, startup=startup, resolve=resolve)

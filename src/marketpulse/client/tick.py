"""The tick as a strategy or dashboard sees it: flat, named for trading, with datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from marketpulse.model import Tick


@dataclass(frozen=True, slots=True)
class MarketDataTick:
    """One update of one instrument. ``tick`` keeps every canonical field for whoever needs
    more (depth, OI, circuits)."""

    symbol: str
    token: str
    exchange: str
    ltp: float
    change: float | None
    change_percent: float | None
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int | None
    bid: float | None
    ask: float | None
    timestamp: datetime
    """When marketpulse received it (UTC)."""
    exchange_timestamp: datetime | None
    """The exchange's time, when the feed gives one (UTC)."""
    stream_id: str
    tick: Tick

    @classmethod
    def from_tick(cls, tick: Tick, stream_id: str) -> MarketDataTick:
        received = tick.ts_recv
        return cls(
            symbol=tick.key,
            token=tick.token,
            exchange=tick.exchange,
            ltp=tick.ltp,
            change=tick.change,
            change_percent=tick.change_pct,
            open=tick.open,
            high=tick.high,
            low=tick.low,
            close=tick.close,
            volume=tick.volume,
            bid=tick.bids[0].price if tick.bids else None,
            ask=tick.asks[0].price if tick.asks else None,
            timestamp=(
                datetime.fromtimestamp(received / 1e9, UTC)
                if received is not None
                else _stream_time(stream_id)
            ),
            exchange_timestamp=(
                datetime.fromtimestamp(tick.ts_exchange / 1000, UTC)
                if tick.ts_exchange is not None
                else None
            ),
            stream_id=stream_id,
            tick=tick,
        )


def _stream_time(stream_id: str) -> datetime:
    return datetime.fromtimestamp(int(stream_id.split("-", 1)[0]) / 1000, UTC)

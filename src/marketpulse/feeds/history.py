"""Provider history: the one shape every broker's REST candle API is asked through.

Backfill (``marketpulse backfill``, ``POST /api/historical/backfill``) and gap repair do not know
any broker: they hand a :class:`HistoryRequest` to the feed's ``SPEC.history`` and store the
candles it yields. Each provider keeps its own chunking, rate limits and retries in its
``rest.py``; it yields one page of candles per upstream request so callers can show progress.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedError
from marketpulse.model import Candle
from marketpulse.subscriptions import TrackedSymbol

CANDLE_INTERVALS: Final[dict[str, timedelta]] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
"""The intervals marketpulse stores, by canonical name, with their length."""


class HistoryUnavailableError(FeedError):
    """The provider cannot serve this request (interval, instrument or range it does not
    offer); the message says what it can do instead."""


def parse_interval(text: str) -> str:
    """A canonical interval name, or ValueError listing the valid ones."""
    name = text.strip().lower()
    if name not in CANDLE_INTERVALS:
        raise ValueError(
            f"unknown candle interval {text!r}; use one of {', '.join(CANDLE_INTERVALS)}"
        )
    return name


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """Candles of one instrument whose start lies in ``[start, end)``.

    ``start`` and ``end`` are timezone-aware; ``instrument`` carries the provider's token and
    exchange as the instrument master resolved them.
    """

    instrument: TrackedSymbol
    interval: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        parse_interval(self.interval)
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("history ranges must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")


HistoryFetcher = Callable[[Settings, HistoryRequest], AsyncIterator[list[Candle]]]
"""``fetch(settings, request)`` yields pages of candles (``symbol`` = the request's canonical
symbol, ``start`` timezone-aware as the provider stamps it, ``status="reconciled"``), oldest
first. Providers stamp daily bars differently (local midnight, session open), so the caller
aligns every start to the exchange session and keeps what falls in the range."""

"""Provider quotes: the one shape every broker's REST quote API is asked through.

The quote service (:mod:`marketpulse.quotes`) answers ``/api/quotes`` and ``/api/indices`` from
the live snapshot when it is fresh and otherwise asks the feed's ``SPEC.quotes``. Each provider
keeps its own batching, rate limits and retries in its ``rest.py`` and raises the typed errors
below, so the service can report them and run its circuit breaker without knowing any broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedError
from marketpulse.model import Tick
from marketpulse.subscriptions import TrackedSymbol


class QuoteRateLimitedError(FeedError):
    """The provider refused the request for exceeding its rate limit (HTTP 429 or its own
    code); ``retry_after`` is the provider's hint in seconds when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuoteProviderDownError(FeedError):
    """The provider could not answer (connection refused, timeout, HTTP 5xx) after its own
    retries; the service counts these towards the provider's circuit breaker."""


QuoteFetcher = Callable[[Settings, Sequence[TrackedSymbol]], Awaitable[list[Tick]]]
"""``fetch(settings, instruments)`` → one tick per instrument the provider answered.

``instruments`` carry the provider's token and exchange as the instrument master resolved them.
Each tick has ``symbol`` = the instrument's canonical symbol, ``source`` = the provider,
``mode="quote"`` (or ``"ltp"`` when the provider only gives a price), OHLC/close/volume where
the provider gives them, and ``ts_exchange`` only when the provider stamps one. The fetcher
splits the request into the provider's batch size and respects its rate limit; instruments the
provider does not know are left out of the result (the service reports them as missing).
Errors: :class:`~marketpulse.feeds.base.FeedAuthError` (credentials missing or rejected — the
message says how to log in), :class:`QuoteRateLimitedError`, :class:`QuoteProviderDownError`.
"""

"""Provider quotes: the one shape every broker's REST quote API is asked through.

The quote service (:mod:`marketpulse.quotes`) answers ``/api/quotes`` and ``/api/indices`` from
the live snapshot when it is fresh and otherwise asks the feed's ``SPEC.quotes``. Each provider
keeps its own batching, rate limits and retries in its ``rest.py`` and raises the typed errors
below, so the service can report them and run its circuit breaker without knowing any broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, cast

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedConnectionError, FeedError
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


class _HttpStatusError(Protocol):
    status: int


@contextmanager
def http_quote_errors(api_error: type[FeedError]) -> Iterator[None]:
    """Map a REST client's failures onto the quote errors, for clients that keep the HTTP status.

    ``api_error`` is the client's error class and must carry the answer's HTTP ``status``: 429
    becomes :class:`QuoteRateLimitedError`, 5xx and :class:`~marketpulse.feeds.base.
    FeedConnectionError` (unreachable after the client's retries) :class:`QuoteProviderDownError`;
    any other refusal (a bad instrument, an auth error) propagates as it is.
    """
    try:
        yield
    except FeedConnectionError as exc:
        raise QuoteProviderDownError(str(exc)) from exc
    except api_error as exc:
        status = cast("_HttpStatusError", exc).status
        if status == 429:
            raise QuoteRateLimitedError(str(exc)) from exc
        if status >= 500:
            raise QuoteProviderDownError(str(exc)) from exc
        raise


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

"""The quote service behind ``/api/quotes`` and ``/api/indices`` (see :mod:`.service`)."""

from marketpulse.quote_service.service import (
    MarketDataService,
    NoQuoteProviderError,
    Origin,
    PriceQuote,
    ProviderDownError,
    QuoteAnswer,
    QuoteAuthError,
    QuoteError,
    QuoteErrorKind,
    QuoteRateLimitError,
    UnknownSymbolError,
)

__all__ = [
    "MarketDataService",
    "NoQuoteProviderError",
    "Origin",
    "PriceQuote",
    "ProviderDownError",
    "QuoteAnswer",
    "QuoteAuthError",
    "QuoteError",
    "QuoteErrorKind",
    "QuoteRateLimitError",
    "UnknownSymbolError",
]

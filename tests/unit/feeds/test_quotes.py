"""How a REST client's HTTP failures map onto the quote service's typed errors."""

from __future__ import annotations

import pytest

from marketpulse.feeds.base import FeedConnectionError, FeedError
from marketpulse.feeds.quotes import (
    QuoteProviderDownError,
    QuoteRateLimitedError,
    http_quote_errors,
)


class ApiError(FeedError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def test_429_is_rate_limited() -> None:
    with (
        pytest.raises(QuoteRateLimitedError, match="slow down") as raised,
        http_quote_errors(ApiError),
    ):
        raise ApiError("slow down", 429)
    assert raised.value.retry_after is None
    assert isinstance(raised.value.__cause__, ApiError)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_means_the_provider_is_down(status: int) -> None:
    with pytest.raises(QuoteProviderDownError, match="broken"), http_quote_errors(ApiError):
        raise ApiError("broken", status)


def test_an_unreachable_provider_is_down() -> None:
    with pytest.raises(QuoteProviderDownError, match="refused"), http_quote_errors(ApiError):
        raise FeedConnectionError("connection refused")


def test_other_refusals_pass_unchanged() -> None:
    error = ApiError("bad instrument", 400)
    with pytest.raises(ApiError) as raised, http_quote_errors(ApiError):
        raise error
    assert raised.value is error


def test_errors_of_other_classes_pass_unchanged() -> None:
    with pytest.raises(KeyError), http_quote_errors(ApiError):
        raise KeyError("x")

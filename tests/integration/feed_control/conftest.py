"""Fixtures for the subscription, feed-control and seeding tests: a sim feed streaming two
symbols, so that what the API adds is visible next to what the settings asked for."""

from __future__ import annotations

import pytest

from marketpulse.config import Settings


@pytest.fixture
def two_symbols(settings: Settings) -> Settings:
    return settings.model_copy(update={"subscribe": ["RELIANCE.NSE", "INFY.NSE"]})

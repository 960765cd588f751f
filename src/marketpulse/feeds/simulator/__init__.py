"""A synthetic Indian market for demos, tests and benchmarks (the ``sim`` feed).

``SimulatedMarket`` is the pure, seeded core (same seed, universe, subscriptions and clock give
the same ticks); ``SimulatorAdapter`` serves it through the feed contract of
:mod:`marketpulse.feeds.base` at a configured rate, honouring NSE market hours.
"""

from marketpulse.feeds.simulator.adapter import SimulatorAdapter, SimulatorConnection
from marketpulse.feeds.simulator.market import SOURCE, SimulatedMarket
from marketpulse.feeds.simulator.trading_calendar import (
    IST,
    monthly_expiry,
    session_open,
    upcoming_monthly_expiries,
)
from marketpulse.feeds.simulator.universe import (
    SimSpec,
    Universe,
    default_universe,
    synthetic_instruments,
)

__all__ = [
    "IST",
    "SOURCE",
    "SimSpec",
    "SimulatedMarket",
    "SimulatorAdapter",
    "SimulatorConnection",
    "Universe",
    "default_universe",
    "monthly_expiry",
    "session_open",
    "synthetic_instruments",
    "upcoming_monthly_expiries",
]

"""One instrument's running state in the simulated market.

Prices are held as integer multiples of the tick size (``price = ticks * num / den``), so they
can never leave the grid and turn into rupees with one exact division. Each instrument walks
about 1 bp per trade, held inside ±9 % of the previous close.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Final

from marketpulse.feeds.simulator.universe import SimSpec

STEP: Final = math.sqrt(3.0) * 1e-4  # half-width of a uniform step with a 1 bp deviation
BAND: Final = 0.09
MIN_TICKS: Final = 10  # keeps the deepest bid above zero


class Book:
    """One instrument's running state; prices are in ticks (``price = ticks * num / den``)."""

    __slots__ = (
        "band_hi",
        "band_lo",
        "close",
        "close_p",
        "den",
        "depth_unit",
        "exchange",
        "half",
        "high",
        "high_p",
        "is_index",
        "lot",
        "low",
        "low_p",
        "max_lots",
        "num",
        "oi",
        "oi_high",
        "oi_low",
        "open",
        "p",
        "pressure",
        "span",
        "symbol",
        "tbq",
        "tbq_mean",
        "token",
        "tsq",
        "turnover",
        "volume",
    )

    def __init__(self, spec: SimSpec, rng: random.Random) -> None:
        tick = Fraction(spec.instrument.tick_size).limit_denominator(10_000)
        self.num, self.den = tick.numerator, tick.denominator
        self.token = spec.token
        self.symbol = spec.symbol
        self.exchange = spec.instrument.exchange.value
        self.is_index = spec.is_index
        lot = self.lot = spec.instrument.lot_size
        daily_lots = spec.daily_volume // lot
        self.max_lots = max(1, daily_lots // 5000)
        self.depth_unit = max(1, daily_lots // 64_000) * lot
        self.pressure = max(1, daily_lots // 25_000) * lot
        self.tbq_mean = daily_lots // 10 * lot

        r = rng.random
        close_p = round(spec.close * self.den / self.num)
        self._set_close(close_p)
        open_p = self._clamp(close_p + int((r() - 0.5) * 0.02 * close_p))
        p = self.p = self._clamp(open_p + int((r() - 0.5) * 0.02 * close_p))
        self.high_p = max(open_p, p) + int(r() * 0.003 * close_p)
        self.low_p = max(MIN_TICKS, min(open_p, p) - int(r() * 0.003 * close_p))
        self.open = self._price(open_p)
        self.high = self._price(self.high_p)
        self.low = self._price(self.low_p)
        self.volume = lot * int(daily_lots * (0.1 + 0.4 * r()))
        self.turnover = self.volume * self._price(self.high_p + self.low_p) / 2.0
        self.tbq = lot * int(daily_lots * (0.05 + 0.1 * r()))
        self.tsq = lot * int(daily_lots * (0.05 + 0.1 * r()))
        self.oi: int | None = None
        self.oi_high = self.oi_low = 0
        if spec.open_interest:
            oi_lots = spec.open_interest // lot
            oi = self.oi = lot * int(oi_lots * (0.9 + 0.2 * r()))
            self.oi_high = oi + lot * int(oi_lots * 0.03 * r())
            self.oi_low = max(0, oi - lot * int(oi_lots * 0.03 * r()))

    def _price(self, ticks: int) -> float:
        return ticks * self.num / self.den

    def _clamp(self, ticks: int) -> int:
        return min(max(ticks, self.band_lo), self.band_hi)

    def _set_close(self, close_p: int) -> None:
        self.close_p = close_p
        self.close = self._price(close_p)
        self.half = max(1, round(STEP * close_p))
        self.span = 2 * self.half + 1
        self.band_lo = max(MIN_TICKS, round(close_p * (1.0 - BAND)))
        self.band_hi = max(self.band_lo + self.span, round(close_p * (1.0 + BAND)))

    def roll_day(self) -> None:
        """Start a new session: today's last price becomes the previous close."""
        p = self.p
        self._set_close(p)
        self.high_p = self.low_p = p
        self.open = self.high = self.low = self.close
        self.volume = 0
        self.turnover = 0.0
        if self.oi is not None:
            self.oi_high = self.oi_low = self.oi

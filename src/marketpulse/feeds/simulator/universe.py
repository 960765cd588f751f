"""The instruments the simulator trades: NIFTY 50 stocks, headline indices, index futures.

Price levels are late-2025 closes, rounded; they only need to look real in a demo. Tokens are
derived from the canonical symbol (CRC-32), not from table position, so a token never changes
when the constituent list is edited or the futures roll to a new month.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final

from marketpulse.feeds.simulator.trading_calendar import upcoming_monthly_expiries
from marketpulse.model import Exchange, Instrument

# NIFTY 50 constituents after the September 2025 rebalance (INDIGO and MAXHEALTH in;
# HEROMOTOCO and INDUSINDBK out). Tata Motors trades as TMPV after its October 2025 demerger.
NIFTY50: Final[tuple[tuple[str, str, float], ...]] = (
    ("ADANIENT", "Adani Enterprises", 2300.0),
    ("ADANIPORTS", "Adani Ports and SEZ", 1500.0),
    ("APOLLOHOSP", "Apollo Hospitals", 7200.0),
    ("ASIANPAINT", "Asian Paints", 2850.0),
    ("AXISBANK", "Axis Bank", 1270.0),
    ("BAJAJ-AUTO", "Bajaj Auto", 9000.0),
    ("BAJAJFINSV", "Bajaj Finserv", 2030.0),
    ("BAJFINANCE", "Bajaj Finance", 1000.0),
    ("BEL", "Bharat Electronics", 400.0),
    ("BHARTIARTL", "Bharti Airtel", 2100.0),
    ("CIPLA", "Cipla", 1510.0),
    ("COALINDIA", "Coal India", 380.0),
    ("DRREDDY", "Dr. Reddy's Laboratories", 1270.0),
    ("EICHERMOT", "Eicher Motors", 7100.0),
    ("ETERNAL", "Eternal", 290.0),
    ("GRASIM", "Grasim Industries", 2750.0),
    ("HCLTECH", "HCL Technologies", 1640.0),
    ("HDFCBANK", "HDFC Bank", 995.0),
    ("HDFCLIFE", "HDFC Life Insurance", 760.0),
    ("HINDALCO", "Hindalco Industries", 840.0),
    ("HINDUNILVR", "Hindustan Unilever", 2300.0),
    ("ICICIBANK", "ICICI Bank", 1360.0),
    ("INDIGO", "InterGlobe Aviation", 5300.0),
    ("INFY", "Infosys", 1600.0),
    ("ITC", "ITC", 400.0),
    ("JIOFIN", "Jio Financial Services", 300.0),
    ("JSWSTEEL", "JSW Steel", 1120.0),
    ("KOTAKBANK", "Kotak Mahindra Bank", 2150.0),
    ("LT", "Larsen & Toubro", 4050.0),
    ("M&M", "Mahindra & Mahindra", 3700.0),
    ("MARUTI", "Maruti Suzuki India", 16000.0),
    ("MAXHEALTH", "Max Healthcare Institute", 1080.0),
    ("NESTLEIND", "Nestle India", 1250.0),
    ("NTPC", "NTPC", 325.0),
    ("ONGC", "Oil and Natural Gas Corporation", 240.0),
    ("POWERGRID", "Power Grid Corporation of India", 265.0),
    ("RELIANCE", "Reliance Industries", 1545.0),
    ("SBILIFE", "SBI Life Insurance", 2000.0),
    ("SBIN", "State Bank of India", 970.0),
    ("SHRIRAMFIN", "Shriram Finance", 850.0),
    ("SUNPHARMA", "Sun Pharmaceutical Industries", 1800.0),
    ("TATACONSUM", "Tata Consumer Products", 1170.0),
    ("TATASTEEL", "Tata Steel", 170.0),
    ("TCS", "Tata Consultancy Services", 3220.0),
    ("TECHM", "Tech Mahindra", 1560.0),
    ("TITAN", "Titan Company", 3900.0),
    ("TMPV", "Tata Motors Passenger Vehicles", 360.0),
    ("TRENT", "Trent", 4200.0),
    ("ULTRACEMCO", "UltraTech Cement", 11700.0),
    ("WIPRO", "Wipro", 260.0),
)

INDICES: Final[tuple[tuple[str, Exchange, str, float], ...]] = (
    ("NIFTY50", Exchange.NSE_INDEX, "NIFTY 50", 26000.0),
    ("NIFTYBANK", Exchange.NSE_INDEX, "NIFTY BANK", 59300.0),
    ("SENSEX", Exchange.BSE_INDEX, "BSE SENSEX", 85000.0),
)

# (underlying, index level the futures trade near, daily volume and open interest of the
# near month in units; the next month carries a tenth).
_FUTURES: Final[tuple[tuple[str, str, float, int, int], ...]] = (
    ("NIFTY", "NIFTY 50 futures", 26000.0, 5_000_000, 15_000_000),
    ("BANKNIFTY", "NIFTY BANK futures", 59300.0, 2_000_000, 2_500_000),
)

# Index lot sizes; NSE revised them for contracts expiring from January 2026.
_LOT_SIZES: Final[dict[str, tuple[int, int]]] = {"NIFTY": (75, 65), "BANKNIFTY": (35, 30)}
_LOT_REVISION: Final = date(2026, 1, 1)

# Cost of carry per month of time to expiry, to put futures a little above the index.
_MONTHLY_CARRY: Final = 0.006

_DAILY_TURNOVER: Final = 5e9  # rupees; sets a plausible share volume from the price
_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
_EXTRA_TOKEN_BASE: Final = 1_000_000  # above every CRC-derived token, so never a collision


@dataclass(frozen=True, slots=True)
class SimSpec:
    """One simulated instrument: its master entry, feed token and where its day starts."""

    token: str
    instrument: Instrument
    close: float
    daily_volume: int = 0
    open_interest: int = 0

    @property
    def symbol(self) -> str:
        return self.instrument.canonical

    @property
    def is_index(self) -> bool:
        return self.instrument.instrument_type == "INDEX"


class Universe:
    """The simulator's instrument list with its token ↔ symbol mapping."""

    def __init__(self, specs: Iterable[SimSpec]) -> None:
        self.specs: list[SimSpec] = list(specs)
        self._by_token: dict[str, SimSpec] = {}
        self._token_of: dict[str, str] = {}
        for spec in self.specs:
            if spec.token in self._by_token:
                other = self._by_token[spec.token].symbol
                raise ValueError(f"token {spec.token} of {spec.symbol} is already {other}")
            if spec.symbol in self._token_of:
                raise ValueError(f"symbol {spec.symbol} appears twice in the universe")
            self._by_token[spec.token] = spec
            self._token_of[spec.symbol] = spec.token

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def instruments(self) -> list[Instrument]:
        return [spec.instrument for spec in self.specs]

    @property
    def tokens(self) -> list[str]:
        return [spec.token for spec in self.specs]

    @property
    def symbols(self) -> dict[str, str]:
        """Token → canonical symbol."""
        return {spec.token: spec.symbol for spec in self.specs}

    def spec(self, token: str) -> SimSpec:
        return self._by_token[token]

    def get(self, token: str) -> SimSpec | None:
        return self._by_token.get(token)

    def token_of(self, symbol: str) -> str:
        """The token of a canonical symbol such as ``RELIANCE.NSE``; ``KeyError`` if unknown."""
        return self._token_of[symbol]

    def symbol_of(self, token: str) -> str:
        return self._by_token[token].symbol


def default_universe(today: date, extra_instruments: int = 0) -> Universe:
    """NIFTY 50, three indices, NIFTY/BANKNIFTY near and next month futures, plus extras.

    ``today`` picks the futures' expiries, so the contracts are the ones trading on that date.
    """
    specs = [_equity(symbol, name, close) for symbol, name, close in NIFTY50]
    specs += [_index(symbol, exchange, name, level) for symbol, exchange, name, level in INDICES]
    for underlying, name, level, volume, oi in _FUTURES:
        for month, expiry in enumerate(upcoming_monthly_expiries(today, 2)):
            share = 1 if month == 0 else 10
            months_left = max(0.0, (expiry - today).days / 30.0)
            specs.append(
                _future(
                    underlying,
                    name,
                    expiry,
                    level * (1.0 + _MONTHLY_CARRY * months_left),
                    volume // share,
                    oi // share,
                )
            )
    specs += synthetic_instruments(extra_instruments)
    return Universe(specs)


def synthetic_instruments(count: int, start: int = 1) -> list[SimSpec]:
    """``SIM0001.NSE`` … equities with spread-out price levels, to scale benchmarks."""
    specs: list[SimSpec] = []
    for n in range(start, start + count):
        # A multiplicative hash spreads prices over ₹20 to ₹5000 without a random generator, so
        # the universe is the same whatever seed drives the market.
        close = 20.0 + (n * 2_654_435_761 % 498_000) / 100.0
        tick = tick_size_for(close)
        instrument = Instrument(
            symbol=f"SIM{n:04d}",
            exchange=Exchange.NSE,
            name=f"Simulated instrument {n}",
            tick_size=tick,
        )
        specs.append(
            SimSpec(
                token=str(_EXTRA_TOKEN_BASE + n),
                instrument=instrument,
                close=on_grid(close, tick),
                daily_volume=int(_DAILY_TURNOVER / close),
            )
        )
    return specs


def tick_size_for(price: float) -> float:
    """NSE cash tick size: ₹0.01 below ₹250 (since June 2024), ₹0.05 otherwise.

    Finer price bands (₹0.10 and up for dearer stocks) are not modelled.
    """
    return 0.01 if price < 250.0 else 0.05


def on_grid(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 2)


def derivative_expiry_code(expiry: date) -> str:
    """``DDMMMYY`` as in ``NIFTY30DEC25FUT``; spelled out so the process locale cannot change it."""
    return f"{expiry.day:02d}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def token_for(symbol: str) -> str:
    """A stable numeric token for a canonical symbol."""
    return str(100_000 + zlib.crc32(symbol.encode()) % 900_000)


def _equity(symbol: str, name: str, close: float) -> SimSpec:
    tick = tick_size_for(close)
    instrument = Instrument(symbol=symbol, exchange=Exchange.NSE, name=name, tick_size=tick)
    return SimSpec(
        token=token_for(instrument.canonical),
        instrument=instrument,
        close=on_grid(close, tick),
        daily_volume=int(_DAILY_TURNOVER / close),
    )


def _index(symbol: str, exchange: Exchange, name: str, level: float) -> SimSpec:
    instrument = Instrument(
        symbol=symbol, exchange=exchange, name=name, instrument_type="INDEX", tick_size=0.01
    )
    return SimSpec(token=token_for(instrument.canonical), instrument=instrument, close=level)


def _future(
    underlying: str, name: str, expiry: date, price: float, volume: int, oi: int
) -> SimSpec:
    old_lot, new_lot = _LOT_SIZES[underlying]
    lot = new_lot if expiry >= _LOT_REVISION else old_lot
    instrument = Instrument(
        symbol=f"{underlying}{derivative_expiry_code(expiry)}FUT",
        exchange=Exchange.NFO,
        name=f"{name} {expiry.isoformat()}",
        instrument_type="FUT",
        lot_size=lot,
        tick_size=0.05,
        expiry=expiry,
    )
    return SimSpec(
        token=token_for(instrument.canonical),
        instrument=instrument,
        close=on_grid(price, 0.05),
        daily_volume=volume - volume % lot,
        open_interest=oi - oi % lot,
    )

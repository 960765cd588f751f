"""The emulator's ``OpenAPIScripMaster.json``: the simulator's universe in Angel One's format.

Rows are spelled as the real master spells them (``RELIANCE-EQ``, ``Nifty 50`` with
``AMXIDX``, paise tick sizes, ``DDMMMYYYY`` expiries), so ``instruments sync --provider
angelone`` against the emulator exercises the real parser and yields the simulator's canonical
symbols (``RELIANCE.NSE``, ``NIFTY50.NSE_INDEX``, ``NIFTY30DEC25FUT.NFO``). Tokens are the
simulator's.
"""

from __future__ import annotations

from typing import Final

from marketpulse.feeds.simulator.universe import SimSpec, Universe
from marketpulse.model import Exchange, parse_derivative_name

_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip

# How Angel's master names the simulator's indices: (symbol, name).
_INDEX_NAMES: Final[dict[str, tuple[str, str]]] = {
    "NIFTY50.NSE_INDEX": ("Nifty 50", "NIFTY"),
    "NIFTYBANK.NSE_INDEX": ("Nifty Bank", "BANKNIFTY"),
    "NIFTYIT.NSE_INDEX": ("Nifty IT", "NIFTY IT"),
    "INDIAVIX.NSE_INDEX": ("India VIX", "INDIA VIX"),
    "SENSEX.BSE_INDEX": ("SENSEX", "SENSEX"),
}
_SEGMENT: Final[dict[Exchange, str]] = {
    Exchange.NSE: "NSE",
    Exchange.BSE: "BSE",
    Exchange.NSE_INDEX: "NSE",
    Exchange.BSE_INDEX: "BSE",
    Exchange.NFO: "NFO",
    Exchange.BFO: "BFO",
}


def _paise(value: float) -> str:
    return f"{value * 100:.6f}"


def master_row(spec: SimSpec) -> dict[str, str] | None:
    """One master row for a simulated instrument (None for segments Angel does not list)."""
    instrument = spec.instrument
    segment = _SEGMENT.get(instrument.exchange)
    if segment is None:
        return None
    row = {
        "token": spec.token,
        "symbol": f"{instrument.symbol}-EQ" if segment == "NSE" else instrument.symbol,
        "name": instrument.symbol,
        "expiry": "",
        "strike": "-1.000000",
        "lotsize": str(instrument.lot_size),
        "instrumenttype": "",
        "exch_seg": segment,
        "tick_size": _paise(instrument.tick_size),
    }
    if instrument.instrument_type == "INDEX":
        symbol, name = _INDEX_NAMES.get(spec.symbol, (instrument.name or "", instrument.symbol))
        row.update(symbol=symbol, name=name, strike="0.000000", instrumenttype="AMXIDX",
                   tick_size="0.000000")  # fmt: skip
    elif instrument.expiry is not None:
        parts = parse_derivative_name(instrument.symbol)
        expiry = instrument.expiry
        row.update(
            symbol=instrument.symbol,
            name=parts.underlying if parts else instrument.symbol,
            expiry=f"{expiry.day:02d}{_MONTHS[expiry.month - 1]}{expiry.year}",
            instrumenttype="FUTIDX" if instrument.instrument_type == "FUT" else "OPTIDX",
        )
        if instrument.strike is not None:
            row["strike"] = _paise(instrument.strike)
    return row


def master_rows(universe: Universe) -> list[dict[str, str]]:
    return [row for spec in universe.specs if (row := master_row(spec)) is not None]

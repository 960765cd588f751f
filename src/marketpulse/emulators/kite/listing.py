"""The simulator's universe as Kite lists it: instrument tokens, tradingsymbols, the CSV dump.

Kite tokens carry their segment in the low byte (``token & 0xFF``), which decides the packet
layout and price divisor on the wire, so the emulator cannot stream the simulator's own tokens.
Each instrument gets ``(simulator token << 8) | segment``: the simulator token (a CRC of the
symbol, below 2²⁴) plays Kite's ``exchange_token``, so tokens stay the same when the futures
roll or the universe grows. Tradingsymbols follow Kite's spelling (``NIFTY 50``,
``NIFTY25DECFUT``) so that the feed's instrument-master parser is exercised on realistic rows
and maps them back to the simulator's canonical symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from marketpulse.feeds.kite.instruments import KiteInstrument, encode_rows, kite_exchange
from marketpulse.feeds.simulator import SimSpec, Universe
from marketpulse.model import parse_derivative_name

# canonical exchange (and instrument type) → (segment code, Kite segment name)
_SEGMENTS: Final[dict[tuple[str, str], tuple[int, str]]] = {
    ("NSE", "EQ"): (1, "NSE"),
    ("BSE", "EQ"): (4, "BSE"),
    ("NFO", "FUT"): (2, "NFO-FUT"),
    ("NFO", "CE"): (2, "NFO-OPT"),
    ("NFO", "PE"): (2, "NFO-OPT"),
    ("NSE_INDEX", "INDEX"): (9, "INDICES"),
    ("BSE_INDEX", "INDEX"): (9, "INDICES"),
}

_INDEX_TRADINGSYMBOLS: Final = {"NIFTY50": "NIFTY 50", "NIFTYBANK": "NIFTY BANK"}
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument: its simulator identity and its Kite row."""

    spec: SimSpec
    row: KiteInstrument

    @property
    def token(self) -> int:
        return self.row.instrument_token

    @property
    def key(self) -> str:
        """``EXCHANGE:TRADINGSYMBOL``, what the quote endpoints are asked with."""
        return f"{self.row.exchange}:{self.row.tradingsymbol}"

    @property
    def is_index(self) -> bool:
        return self.spec.is_index


class KiteListing:
    """Look-ups between simulator tokens, Kite tokens and ``EXCHANGE:TRADINGSYMBOL`` keys."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.listings = [Listing(spec, _row(spec)) for spec in universe.specs]
        self.by_token = {item.token: item for item in self.listings}
        self.by_sim_token = {item.spec.token: item for item in self.listings}
        self.by_key = {item.key: item for item in self.listings}

    def csv(self, exchange: str | None = None) -> str:
        """The ``/instruments`` dump, or ``/instruments/{exchange}``'s."""
        rows = [
            item.row for item in self.listings if exchange is None or item.row.exchange == exchange
        ]
        return encode_rows(rows)


def _row(spec: SimSpec) -> KiteInstrument:
    instrument = spec.instrument
    exchange = instrument.exchange.value
    kind = instrument.instrument_type
    code, segment = _SEGMENTS[(exchange, kind)]
    base = int(spec.token)
    if base >= 1 << 24:
        raise ValueError(f"simulator token {spec.token} does not fit a Kite exchange_token")
    if spec.is_index:
        tradingsymbol = _INDEX_TRADINGSYMBOLS.get(instrument.symbol, instrument.symbol)
        name, tick, lot = tradingsymbol, 0.0, 0  # Kite lists indices without tick or lot size
    elif kind == "EQ":
        tradingsymbol, name = instrument.symbol, (instrument.name or instrument.symbol).upper()
        tick, lot = instrument.tick_size, instrument.lot_size
    else:
        parts = parse_derivative_name(instrument.symbol)
        if parts is None or instrument.expiry is None:
            raise ValueError(f"{instrument.symbol} is not a derivative name")
        expiry = instrument.expiry
        # Kite's monthly contract spelling: NIFTY25DECFUT, NIFTY25DEC24500CE.
        month = f"{parts.underlying}{expiry.year % 100:02d}{_MONTHS[expiry.month - 1]}"
        tradingsymbol = month + (
            "FUT" if parts.strike is None else f"{parts.strike:g}{parts.instrument_type}"
        )
        name, tick, lot = parts.underlying, instrument.tick_size, instrument.lot_size
    return KiteInstrument(
        instrument_token=(base << 8) | code, exchange_token=base, tradingsymbol=tradingsymbol,
        name=name, last_price=spec.close, expiry=instrument.expiry,
        strike=instrument.strike or 0.0, tick_size=tick, lot_size=lot,
        instrument_type="EQ" if spec.is_index else kind,  # Kite types indices as EQ
        segment=segment, exchange=kite_exchange(exchange),
    )  # fmt: skip

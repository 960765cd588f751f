"""Kite's instrument master (the ``/instruments`` CSV dump) and its canonical symbols.

Pure functions of text: the REST client downloads, this module parses, the emulator writes the
same format. Each row becomes an :class:`InstrumentRecord` under our symbol rules
(ARCHITECTURE §3):

- cash (segments ``NSE``/``BSE``): ``INFY.NSE``; the token is the instrument_token the ticker
  streams, the broker symbol Kite's tradingsymbol;
- indices (segment ``INDICES``): the tradingsymbol without spaces on ``NSE_INDEX``/``BSE_INDEX``,
  through the index aliases, so ``NIFTY 50`` → ``NIFTY50.NSE_INDEX`` and ``SENSEX`` →
  ``SENSEX.BSE_INDEX``;
- derivatives (NFO, BFO, CDS, BCD, MCX, NCO): built from the underlying (``name``), expiry and
  strike — ``NIFTY30DEC25FUT.NFO``, ``NIFTY30DEC2524500CE.NFO`` — never from Kite's
  tradingsymbol, whose weekly-expiry form (``NIFTY2511824500CE``) differs from the monthly one.

Rows that cannot be expressed (an exchange we have no code for, a name the symbol grammar
rejects) are skipped and counted by reason, never guessed at.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Final

import msgspec

from marketpulse.feeds.base import FeedError
from marketpulse.feeds.simulator.universe import derivative_expiry_code
from marketpulse.model import Exchange, SymbolError, format_strike, parse_symbol
from marketpulse.store.instruments import InstrumentRecord, ParsedMaster

COLUMNS: Final = (
    "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry",
    "strike", "tick_size", "lot_size", "instrument_type", "segment", "exchange",
)  # fmt: skip

_CASH: Final = frozenset({"NSE", "BSE"})
_DERIVATIVE_EXCHANGES: Final = frozenset({"NFO", "BFO", "CDS", "BCD", "MCX", "NCO"})
_INDEX_EXCHANGE: Final = {"NSE": Exchange.NSE_INDEX.value, "BSE": Exchange.BSE_INDEX.value}
_KITE_EXCHANGE: Final = {v: k for k, v in _INDEX_EXCHANGE.items()}
_OPTION_TYPES: Final = frozenset({"CE", "PE"})
_NOT_IN_INDEX_NAME: Final = re.compile(r"[^A-Z0-9&_\-]")
_NOT_IN_UNDERLYING: Final = re.compile(r"[^A-Z0-9&\-]")


class KiteInstrument(msgspec.Struct, frozen=True):
    """One row of the dump, typed as Kite documents the columns."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str = ""
    last_price: float = 0.0
    expiry: date | None = None
    strike: float = 0.0
    tick_size: float = 0.0
    lot_size: int = 0
    instrument_type: str = "EQ"
    segment: str = ""
    exchange: str = ""


class InstrumentMasterError(FeedError, ValueError):
    """The text is not a Kite instrument dump (missing columns); says which."""


# --------------------------------------------------------------------------- CSV codec


def decode_rows(text: str) -> Iterator[KiteInstrument | str]:
    """Each data row as a :class:`KiteInstrument`, or a string saying why it is unreadable."""
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InstrumentMasterError(
            f"not a Kite instrument dump: missing column(s) {', '.join(missing)}"
        )
    for row in reader:
        try:
            expiry = row["expiry"].strip()
            yield KiteInstrument(
                instrument_token=int(row["instrument_token"]),
                exchange_token=int(row["exchange_token"] or 0),
                tradingsymbol=row["tradingsymbol"].strip(),
                name=(row["name"] or "").strip(),
                last_price=float(row["last_price"] or 0),
                expiry=date.fromisoformat(expiry) if expiry else None,
                strike=float(row["strike"] or 0),
                tick_size=float(row["tick_size"] or 0),
                lot_size=int(float(row["lot_size"] or 0)),
                instrument_type=row["instrument_type"].strip().upper(),
                segment=row["segment"].strip().upper(),
                exchange=row["exchange"].strip().upper(),
            )
        except (ValueError, TypeError, AttributeError):
            yield "unreadable row"


def encode_rows(rows: Iterable[KiteInstrument]) -> str:
    """The dump for ``rows``, as Kite serves it (emulator side)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(
            (
                r.instrument_token, r.exchange_token, r.tradingsymbol, r.name,
                _number(r.last_price), r.expiry.isoformat() if r.expiry else "",
                _number(r.strike), _number(r.tick_size), r.lot_size, r.instrument_type,
                r.segment, r.exchange,
            )
        )  # fmt: skip
    return out.getvalue()


def _number(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".") if value else "0"


# --------------------------------------------------------------------------- canonical form


def parse_instruments(text: str) -> ParsedMaster:
    """Every usable row of a dump as a canonical :class:`InstrumentRecord`."""
    parsed = ParsedMaster()
    for row in decode_rows(text):
        if isinstance(row, str):
            parsed.skip(row)
            continue
        record = to_record(row)
        if isinstance(record, str):
            parsed.skip(record)
        else:
            parsed.records.append(record)
    return parsed


def to_record(row: KiteInstrument) -> InstrumentRecord | str:
    """The canonical record of ``row``, or the reason it has none."""
    token = str(row.instrument_token)
    name = row.name or None
    if row.segment == "INDICES":
        exchange = _INDEX_EXCHANGE.get(row.exchange)
        if exchange is None:
            return f"index on exchange {row.exchange}"
        symbol = _canonical(_NOT_IN_INDEX_NAME.sub("", row.tradingsymbol.upper()), exchange)
        if symbol is None:
            return "index name without a canonical form"
        return InstrumentRecord(
            symbol, exchange, token, row.tradingsymbol, name or row.tradingsymbol,
            instrument_type="INDEX", lot_size=row.lot_size, tick_size=row.tick_size,
        )  # fmt: skip
    if row.exchange in _CASH:
        symbol = _canonical(row.tradingsymbol.upper(), row.exchange)
        if symbol is None:
            return f"{row.exchange} tradingsymbol without a canonical form"
        return InstrumentRecord(
            symbol, row.exchange, token, row.tradingsymbol, name,
            instrument_type=row.instrument_type or "EQ", lot_size=row.lot_size,
            tick_size=row.tick_size,
        )  # fmt: skip
    if row.exchange not in _DERIVATIVE_EXCHANGES:
        return f"exchange {row.exchange or '(none)'} has no canonical code"
    kind = row.instrument_type
    if kind != "FUT" and kind not in _OPTION_TYPES:
        return f"{row.exchange} instrument type {kind}"
    underlying = _NOT_IN_UNDERLYING.sub("", row.name.upper())
    if not underlying or row.expiry is None:
        return "derivative without underlying or expiry"
    contract = f"{underlying}{derivative_expiry_code(row.expiry)}"
    strike = None if kind == "FUT" else row.strike
    contract += "FUT" if strike is None else f"{format_strike(strike)}{kind}"
    symbol = _canonical(contract, row.exchange)
    if symbol is None:
        return "derivative without a canonical form"
    return InstrumentRecord(
        symbol, row.exchange, token, row.tradingsymbol, name, instrument_type=kind,
        lot_size=row.lot_size, tick_size=row.tick_size, expiry=row.expiry, strike=strike,
    )  # fmt: skip


def _canonical(name: str, exchange: str) -> str | None:
    """``NAME.EXCHANGE`` if the symbol grammar accepts it unchanged (aliases aside)."""
    try:
        symbol = parse_symbol(f"{name}.{exchange}")
    except SymbolError:
        return None
    if symbol.exchange.value != exchange:
        return None  # e.g. a BSE share literally named SENSEX would turn into the index
    return str(symbol)


def kite_exchange(exchange: str) -> str:
    """Kite's exchange for a canonical one: indices live on ``NSE``/``BSE`` at Kite."""
    return _KITE_EXCHANGE.get(exchange, exchange)


def quote_key(exchange: str, tradingsymbol: str) -> str:
    """The ``EXCHANGE:TRADINGSYMBOL`` form the quote endpoints take (``NSE:NIFTY 50``)."""
    return f"{kite_exchange(exchange)}:{tradingsymbol}"

"""Fyers' symbol masters (``/sym_details/<EXCHANGE_SEGMENT>.csv``) and their canonical symbols.

Pure functions of text: ``feed.instruments`` downloads, this module parses, the emulator writes
the same format. The CSVs have no header; the columns (Fyers API v3 docs, "Symbol Master") are
listed in :data:`COLUMNS`. The provider *token* of every record is the Fyers symbol ticker
(``NSE:SBIN-EQ``): it is what the REST API and the symbol-token lookup take, and the lookup turns
it into the data socket's topic (ARCHITECTURE §3 names "Fyers symbol" as Fyers' token).

- cash (``-EQ`` on NSE; BSE's group suffix ``-A``/``-B``/…): ``SBIN.NSE``; other NSE series
  (``-BE``, ``-SM``, …) are skipped by reason, so one share never gets two canonical symbols;
- indices (``-INDEX``): ``NIFTY50.NSE_INDEX``, ``SENSEX.BSE_INDEX`` through the index aliases;
- derivatives: ``UNDERLYING + DDMMMYY + FUT | strike + CE/PE`` from the underlying, expiry and
  strike columns, never from Fyers' own ticker spelling.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Final

import msgspec

from marketpulse.feeds.base import FeedError
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.feeds.simulator.universe import derivative_expiry_code
from marketpulse.model import SymbolError, format_strike, parse_symbol
from marketpulse.store.instruments import InstrumentRecord, ParsedMaster

COLUMNS: Final = (
    "fytoken", "symbol_details", "instrument_type", "lot_size", "tick_size", "isin",
    "trading_session", "last_update", "expiry", "symbol", "exchange", "segment", "scrip_code",
    "underlying", "underlying_scrip_code", "strike", "option_type", "underlying_fytoken",
)  # fmt: skip

# (exchange code, segment code) → canonical exchange of the segment's tradables
_SEGMENTS: Final[dict[tuple[int, int], str]] = {
    (10, 10): "NSE", (10, 11): "NFO", (10, 12): "CDS", (10, 20): "NCO",
    (12, 10): "BSE", (12, 11): "BFO", (12, 12): "BCD", (11, 20): "MCX",
}  # fmt: skip
_INDEX_EXCHANGE: Final = {"NSE": "NSE_INDEX", "BSE": "BSE_INDEX"}
MASTER_FILES: Final[dict[str, tuple[int, int]]] = {
    "NSE_CM": (10, 10), "NSE_FO": (10, 11), "NSE_CD": (10, 12), "NSE_COM": (10, 20),
    "BSE_CM": (12, 10), "BSE_FO": (12, 11), "BSE_CD": (12, 12), "MCX_COM": (11, 20),
}  # fmt: skip
"""Symbol-master file names Fyers publishes → (exchange, segment) codes."""


class FyersSymbol(msgspec.Struct, frozen=True):
    """One row of a symbol master, typed."""

    fytoken: str
    symbol_details: str
    instrument_type: int
    lot_size: int
    tick_size: float
    isin: str
    trading_session: str
    last_update: str
    expiry: int  # epoch seconds, 0 for none
    symbol: str  # the ticker, e.g. NSE:SBIN-EQ
    exchange: int
    segment: int
    scrip_code: str
    underlying: str = ""
    underlying_scrip_code: str = ""
    strike: float = 0.0
    option_type: str = "XX"
    underlying_fytoken: str = ""


class SymbolMasterError(FeedError, ValueError):
    """The text is not a Fyers symbol master; says why."""


def decode_rows(text: str) -> Iterator[FyersSymbol | str]:
    """Each row as a :class:`FyersSymbol`, or why it is unreadable."""
    for row in csv.reader(io.StringIO(text)):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 13:
            yield "row with fewer than 13 columns"
            continue
        cells = [cell.strip() for cell in row] + [""] * (len(COLUMNS) - len(row))
        try:
            yield FyersSymbol(
                cells[0], cells[1], int(float(cells[2] or 0)), int(float(cells[3] or 0)),
                float(cells[4] or 0), cells[5], cells[6], cells[7], int(float(cells[8] or 0)),
                cells[9], int(cells[10]), int(cells[11]), cells[12], cells[13], cells[14],
                float(cells[15] or 0), cells[16] or "XX", cells[17],
            )  # fmt: skip
        except ValueError:
            yield "unreadable row"


def encode_rows(rows: Iterable[FyersSymbol]) -> str:
    """A symbol master for ``rows``, as Fyers serves it (emulator side)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in rows:
        writer.writerow(
            (r.fytoken, r.symbol_details, r.instrument_type, r.lot_size, _number(r.tick_size),
             r.isin, r.trading_session, r.last_update, r.expiry, r.symbol, r.exchange,
             r.segment, r.scrip_code, r.underlying, r.underlying_scrip_code,
             _number(r.strike) if r.strike else -1, r.option_type, r.underlying_fytoken)
        )  # fmt: skip
    return out.getvalue()


def _number(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".") if value else "0"


def expiry_date(epoch: int) -> date | None:
    """Expiry epoch seconds → the IST trading date (Fyers stamps expiries in IST)."""
    if epoch <= 0:
        return None
    return datetime.fromtimestamp(epoch, UTC).astimezone(IST).date()


def parse_master(text: str, parsed: ParsedMaster | None = None) -> ParsedMaster:
    """Every usable row of one symbol master as a canonical :class:`InstrumentRecord`."""
    parsed = parsed or ParsedMaster()
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


def _canonical(name: str, exchange: str) -> str | None:
    try:
        symbol = parse_symbol(f"{name}.{exchange}")
    except SymbolError:
        return None
    return str(symbol) if symbol.exchange.value == exchange else None


def to_record(row: FyersSymbol) -> InstrumentRecord | str:
    """The canonical record of ``row``, or the reason it has none."""
    exchange = _SEGMENTS.get((row.exchange, row.segment))
    if exchange is None:
        return f"exchange/segment {row.exchange}/{row.segment} has no canonical code"
    _prefix, _, name = row.symbol.partition(":")
    if not name:
        return "ticker without EXCHANGE: prefix"
    lot, tick = max(row.lot_size, 1), row.tick_size or 0.05
    if name.endswith("-INDEX"):
        index_exchange = _INDEX_EXCHANGE.get(exchange)
        symbol = _canonical(name.removesuffix("-INDEX"), index_exchange or "")
        if symbol is None:
            return "index without a canonical form"
        return InstrumentRecord(symbol, index_exchange or "", row.symbol, row.symbol,
                                row.symbol_details or None, "INDEX", lot, tick)  # fmt: skip
    if exchange in ("NSE", "BSE"):
        base, _, series = name.rpartition("-")
        if not base:
            return f"{exchange} ticker without a series"
        if exchange == "NSE" and series != "EQ":
            return f"NSE series {series}"
        symbol = _canonical(base, exchange)
        if symbol is None:
            return f"{exchange} ticker without a canonical form"
        return InstrumentRecord(symbol, exchange, row.symbol, row.symbol,
                                row.symbol_details or None, "EQ", lot, tick,
                                isin=row.isin or None)  # fmt: skip
    expiry = expiry_date(row.expiry)
    underlying = "".join(c for c in row.underlying.upper() if c.isalnum() or c in "&-")
    if not underlying or expiry is None:
        return "derivative without underlying or expiry"
    option = row.option_type.upper()
    kind = option if option in ("CE", "PE") else "FUT"
    strike = row.strike if kind != "FUT" else None
    contract = underlying + derivative_expiry_code(expiry)
    contract += "FUT" if strike is None else f"{format_strike(strike)}{kind}"
    symbol = _canonical(contract, exchange)
    if symbol is None:
        return "derivative without a canonical form"
    return InstrumentRecord(symbol, exchange, row.symbol, row.symbol, row.symbol_details or None,
                            kind, lot, tick, expiry, strike)  # fmt: skip

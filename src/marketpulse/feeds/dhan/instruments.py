"""Dhan's scrip master CSV (``api-scrip-master.csv``) ⇄ canonical instrument records.

A Dhan security id is unique only within its exchange segment, so the token stored in the
instrument master is the key ``SEGMENT|ID`` (``NSE_EQ|1333``, ``IDX_I|13``): two rows can only
collide if Dhan lists the same id twice in one segment, which the shared sync reports as a
collision. Canonical names follow the rest of marketpulse: ``HDFCBANK.NSE``,
``NIFTY50.NSE_INDEX``, ``NIFTY30DEC25FUT.NFO``, ``NIFTY30DEC2524500CE.NFO``.

The same module writes the CSV (for the emulator), so parsing is tested on rows in the real
column layout.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from marketpulse.feeds.dhan.wire import make_key
from marketpulse.feeds.simulator.universe import derivative_expiry_code
from marketpulse.model import Exchange, SymbolError, format_strike, parse_symbol
from marketpulse.store.instruments import InstrumentRecord, ParsedMaster

COLUMNS: Final = (
    "SEM_EXM_EXCH_ID", "SEM_SEGMENT", "SEM_SMST_SECURITY_ID", "SEM_INSTRUMENT_NAME",
    "SEM_EXPIRY_CODE", "SEM_TRADING_SYMBOL", "SEM_LOT_UNITS", "SEM_CUSTOM_SYMBOL",
    "SEM_EXPIRY_DATE", "SEM_STRIKE_PRICE", "SEM_OPTION_TYPE", "SEM_TICK_SIZE",
    "SEM_EXPIRY_FLAG", "SEM_EXCH_INSTRUMENT_TYPE", "SEM_SERIES", "SM_SYMBOL_NAME",
)  # fmt: skip

# (SEM_EXM_EXCH_ID, SEM_SEGMENT) → (feed segment, canonical exchange)
SEGMENTS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("NSE", "E"): ("NSE_EQ", "NSE"), ("BSE", "E"): ("BSE_EQ", "BSE"),
    ("NSE", "D"): ("NSE_FNO", "NFO"), ("BSE", "D"): ("BSE_FNO", "BFO"),
    ("NSE", "C"): ("NSE_CURRENCY", "CDS"), ("BSE", "C"): ("BSE_CURRENCY", "BCD"),
    ("MCX", "M"): ("MCX_COMM", "MCX"),
    ("NSE", "I"): ("IDX_I", "NSE_INDEX"), ("BSE", "I"): ("IDX_I", "BSE_INDEX"),
}  # fmt: skip
DERIVATIVES: Final = {
    "FUTIDX": "FUT", "FUTSTK": "FUT", "FUTCOM": "FUT", "FUTCUR": "FUT",
    "OPTIDX": "OPT", "OPTSTK": "OPT", "OPTFUT": "OPT", "OPTCUR": "OPT",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScripRow:
    """The columns of one scrip-master row that marketpulse uses."""

    exchange_id: str  # NSE, BSE, MCX
    segment: str  # E, D, C, M, I
    security_id: int
    instrument: str  # EQUITY, INDEX, FUTIDX, OPTSTK, ...
    trading_symbol: str
    lot_size: int = 1
    name: str = ""
    expiry: date | None = None
    strike: float | None = None
    option_type: str = "XX"
    tick_size: float = 0.05
    series: str = ""


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def parse_rows(text: str) -> Iterable[ScripRow | str]:
    """Typed rows of the CSV, or a reason string for a row that cannot be read."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {
        "SEM_EXM_EXCH_ID",
        "SEM_SEGMENT",
        "SEM_SMST_SECURITY_ID",
        "SEM_TRADING_SYMBOL",
    } - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"the Dhan scrip master lacks the columns {', '.join(sorted(missing))}")
    for row in reader:
        ident = (row.get("SEM_SMST_SECURITY_ID") or "").strip()
        if not ident.isdigit():
            yield "security id is not a number"
            continue
        expiry_text = (row.get("SEM_EXPIRY_DATE") or "").strip()
        expiry = None
        if expiry_text and not expiry_text.startswith(("0001", "1980")):
            try:
                expiry = datetime.fromisoformat(expiry_text).date()
            except ValueError:
                yield "unreadable expiry date"
                continue
        strike = _number(row.get("SEM_STRIKE_PRICE") or "", 0.0)
        yield ScripRow(
            exchange_id=(row.get("SEM_EXM_EXCH_ID") or "").strip().upper(),
            segment=(row.get("SEM_SEGMENT") or "").strip().upper(),
            security_id=int(ident),
            instrument=(row.get("SEM_INSTRUMENT_NAME") or "").strip().upper(),
            trading_symbol=(row.get("SEM_TRADING_SYMBOL") or "").strip(),
            lot_size=max(1, int(_number(row.get("SEM_LOT_UNITS") or "", 1))),
            name=(row.get("SM_SYMBOL_NAME") or row.get("SEM_CUSTOM_SYMBOL") or "").strip(),
            expiry=expiry,
            strike=strike if strike > 0 else None,
            option_type=(row.get("SEM_OPTION_TYPE") or "XX").strip().upper(),
            tick_size=_number(row.get("SEM_TICK_SIZE") or "", 0.05),
            series=(row.get("SEM_SERIES") or "").strip().upper(),
        )


def canonical(row: ScripRow) -> InstrumentRecord | str:
    """The record of ``row``, or why it is left out."""
    found = SEGMENTS.get((row.exchange_id, row.segment))
    if found is None:
        return f"segment {row.exchange_id}/{row.segment} is not streamed"
    segment, exchange = found
    token = make_key(segment, row.security_id)

    def record(name: str, itype: str, expiry: date | None = None) -> InstrumentRecord:
        text = str(parse_symbol(name, Exchange(exchange)))
        return InstrumentRecord(
            text, exchange, token, broker_symbol=row.trading_symbol, name=row.name or None,
            instrument_type=itype, lot_size=row.lot_size, tick_size=row.tick_size,
            expiry=expiry, strike=row.strike if expiry is not None else None,
        )  # fmt: skip

    try:
        if row.segment == "I" or row.instrument == "INDEX":
            symbol = parse_symbol(f"{row.exchange_id}:{row.trading_symbol}")
            name = symbol.name
            if symbol.exchange.value != exchange:
                name = "".join(ch for ch in row.trading_symbol.upper() if ch.isalnum())
            return record(name, "INDEX")
        kind = DERIVATIVES.get(row.instrument)
        if kind is None:
            return record(row.trading_symbol, "EQ")
        if row.expiry is None:
            return "derivative without an expiry date"
        underlying = row.trading_symbol.split("-")[0].upper()
        code = derivative_expiry_code(row.expiry)
        if kind == "FUT":
            return record(f"{underlying}{code}FUT", "FUT", row.expiry)
        if row.option_type in ("CE", "PE") and row.strike is not None:
            name = f"{underlying}{code}{format_strike(row.strike)}{row.option_type}"
            return record(name, row.option_type, row.expiry)
        return "option without a strike or CE/PE"
    except SymbolError:
        return "name is not a valid canonical symbol"


def parse_master(text: str) -> ParsedMaster:
    """Every usable row of the CSV as a canonical :class:`InstrumentRecord`."""
    parsed = ParsedMaster()
    for row in parse_rows(text):
        record = row if isinstance(row, str) else canonical(row)
        if isinstance(record, str):
            parsed.skip(record)
        else:
            parsed.records.append(record)
    return parsed


def encode_rows(rows: Iterable[ScripRow]) -> str:
    """The CSV for ``rows`` in Dhan's column layout (for the emulator)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([
            r.exchange_id, r.segment, r.security_id, r.instrument, 0 if r.expiry else "",
            r.trading_symbol, f"{r.lot_size:.1f}", r.name,
            f"{r.expiry.isoformat()} 14:30:00" if r.expiry else "",
            f"{r.strike:.5f}" if r.strike else "-0.01000", r.option_type, f"{r.tick_size:.4f}",
            "M" if r.expiry else "NA", r.instrument if r.instrument != "EQUITY" else "ES",
            r.series, r.name,
        ])  # fmt: skip
    return out.getvalue()

"""Paytm Money's security master CSV ⇄ canonical instrument records.

The spec (§8) knows the file only from third parties: ~13 MB, a header row, company names with
commas (so a quote-aware CSV reader), the same ticker in several exchange/series rows with
different ids — and **no column names**. The parser therefore looks columns up by a few
plausible spellings (:data:`ALIASES`, case-insensitive) and fails with the header it found when a
required one is missing; :data:`COLUMNS` is the layout the emulator writes.

Identity: the token is ``EXCHANGE:ID:SCRIP_TYPE`` (``NSE:2885:EQUITY``), so two rows collide only
if Paytm lists the same id twice for one exchange and scrip type — which the shared sync reports.
Cash equities on NSE keep series ``EQ`` only (the spec's advice), so one symbol maps to one row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from marketpulse.feeds.paytm.wire import canonical_exchange, make_key
from marketpulse.feeds.simulator.universe import derivative_expiry_code
from marketpulse.model import Exchange, SymbolError, format_strike, parse_symbol
from marketpulse.store.instruments import InstrumentRecord, ParsedMaster

COLUMNS: Final = ("security_id", "exchange", "segment", "series", "symbol", "name",
                  "instrument_type", "expiry_date", "strike_price", "option_type", "lot_size",
                  "tick_size", "isin")  # fmt: skip
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "security_id": ("security_id", "scrip_id", "securityid", "id"),
    "exchange": ("exchange", "exchange_type", "exch"),
    "series": ("series",),
    "symbol": ("symbol", "trading_symbol", "tradingsymbol"),
    "name": ("name", "company_name", "display_name"),
    "instrument_type": ("instrument_type", "instrument", "scrip_type", "segment"),
    "expiry_date": ("expiry_date", "expiry"),
    "strike_price": ("strike_price", "strike"),
    "option_type": ("option_type",),
    "lot_size": ("lot_size", "lotsize"),
    "tick_size": ("tick_size", "ticksize"),
    "isin": ("isin", "isin_code"),
}
REQUIRED: Final = ("security_id", "exchange", "symbol", "instrument_type")
SCRIP_TYPE_OF: Final[dict[str, str]] = {
    "INDEX": "INDEX", "IDX": "INDEX", "I": "INDEX",
    "ES": "EQUITY", "EQ": "EQUITY", "EQUITY": "EQUITY", "E": "EQUITY",
    "ETF": "ETF",
    "FUTIDX": "FUTURE", "FUTSTK": "FUTURE", "FUT": "FUTURE", "FUTURE": "FUTURE",
    "OPTIDX": "OPTION", "OPTSTK": "OPTION", "OPT": "OPTION", "OPTION": "OPTION",
}  # fmt: skip
_DATE_FORMATS: Final = ("%Y-%m-%d", "%d-%m-%Y", "%d-%b-%Y", "%d%b%Y", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class ScripRow:
    """The columns of one security-master row that marketpulse uses."""

    security_id: int
    exchange: str  # NSE / BSE
    scrip_type: str  # INDEX / EQUITY / ETF / FUTURE / OPTION
    symbol: str
    name: str = ""
    series: str = ""
    expiry: date | None = None
    strike: float | None = None
    option_type: str = ""
    lot_size: int = 1
    tick_size: float = 0.05
    isin: str = ""


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def _date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


def _columns(fieldnames: Iterable[str]) -> dict[str, str]:
    present = {name.strip().lower(): name for name in fieldnames}
    found = {}
    for column, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in present:
                found[column] = present[spelling]
                break
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise ValueError(
            f"the Paytm security master lacks the columns {', '.join(missing)} (its header is "
            f"{', '.join(present.values())}); the expected layout is {', '.join(COLUMNS)}"
        )
    return found


def parse_rows(text: str) -> Iterable[ScripRow | str]:
    """Typed rows of the CSV, or a reason string for a row that cannot be read."""
    reader = csv.DictReader(io.StringIO(text))
    cols = _columns(reader.fieldnames or [])

    def get(row: dict[str, str], column: str) -> str:
        name = cols.get(column)
        return (row.get(name) or "").strip() if name else ""

    for row in reader:
        ident = get(row, "security_id")
        if not ident.isdigit():
            yield "security id is not a number"
            continue
        scrip_type = SCRIP_TYPE_OF.get(get(row, "instrument_type").upper())
        if scrip_type is None:
            yield f"instrument type {get(row, 'instrument_type') or '(empty)'} is not streamed"
            continue
        expiry_text = get(row, "expiry_date")
        try:
            expiry = _date(expiry_text) if expiry_text else None
        except ValueError:
            yield "unreadable expiry date"
            continue
        strike = _number(get(row, "strike_price"), 0.0)
        yield ScripRow(
            security_id=int(ident), exchange=get(row, "exchange").upper(), scrip_type=scrip_type,
            symbol=get(row, "symbol"), name=get(row, "name"), series=get(row, "series").upper(),
            expiry=expiry, strike=strike if strike > 0 else None,
            option_type=get(row, "option_type").upper(),
            lot_size=max(1, int(_number(get(row, "lot_size"), 1))),
            tick_size=_number(get(row, "tick_size"), 0.05), isin=get(row, "isin"),
        )  # fmt: skip


def canonical(row: ScripRow) -> InstrumentRecord | str:
    """The record of ``row``, or why it is left out."""
    if row.exchange not in ("NSE", "BSE"):
        return f"exchange {row.exchange or '(empty)'} is not streamed"
    if row.scrip_type in ("EQUITY", "ETF") and row.exchange == "NSE" and row.series not in (
        "EQ", ""
    ):  # fmt: skip
        return "NSE cash series other than EQ"
    exchange = canonical_exchange(row.exchange, row.scrip_type)
    token = make_key(row.exchange, row.security_id, row.scrip_type)

    def record(name: str, itype: str, expiry: date | None = None) -> InstrumentRecord:
        return InstrumentRecord(
            str(parse_symbol(name, Exchange(exchange))), exchange, token,
            broker_symbol=row.symbol, name=row.name or None, instrument_type=itype,
            lot_size=row.lot_size, tick_size=row.tick_size, expiry=expiry,
            strike=row.strike if expiry is not None else None, isin=row.isin or None,
        )  # fmt: skip

    try:
        if row.scrip_type == "INDEX":
            symbol = parse_symbol(f"{row.exchange}:{row.symbol}")
            name = symbol.name
            if symbol.exchange.value != exchange:
                name = "".join(ch for ch in row.symbol.upper() if ch.isalnum())
            return record(name, "INDEX")
        if row.scrip_type in ("EQUITY", "ETF"):
            return record(row.symbol, "EQ")
        if row.expiry is None:
            return "derivative without an expiry date"
        underlying = row.symbol.split("-")[0].split(" ")[0].upper()
        code = derivative_expiry_code(row.expiry)
        if row.scrip_type == "FUTURE":
            return record(f"{underlying}{code}FUT", "FUT", row.expiry)
        if row.option_type in ("CE", "PE") and row.strike is not None:
            strike = format_strike(row.strike)
            return record(f"{underlying}{code}{strike}{row.option_type}", row.option_type,
                          row.expiry)  # fmt: skip
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
    """The CSV for ``rows`` in :data:`COLUMNS` (for the emulator)."""
    kinds = {"INDEX": "INDEX", "EQUITY": "ES", "ETF": "ETF", "FUTURE": "FUTIDX",
             "OPTION": "OPTIDX"}  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([
            r.security_id, r.exchange, "D" if r.expiry else ("I" if r.scrip_type == "INDEX"
                                                            else "E"),
            r.series, r.symbol, r.name, kinds[r.scrip_type],
            r.expiry.isoformat() if r.expiry else "", f"{r.strike:.2f}" if r.strike else "",
            r.option_type, r.lot_size, f"{r.tick_size:.2f}", r.isin,
        ])  # fmt: skip
    return out.getvalue()

"""Angel One's instrument master (``OpenAPIScripMaster.json``) in canonical terms.

A pure function of the downloaded bytes. Each row of the master is a JSON object of strings::

    {"token": "2885", "symbol": "RELIANCE-EQ", "name": "RELIANCE", "expiry": "",
     "strike": "-1.000000", "lotsize": "1", "instrumenttype": "", "exch_seg": "NSE",
     "tick_size": "5.000000"}

Mapping rules (why each one, see ``docs/brokers/angelone.md``):

- ``tick_size`` and ``strike`` are in paise → ÷ 100; currency options (CDS ``OPTCUR``/
  ``OPTIRC``) carry the strike with the segment's 1e7 scale instead (83.25 ₹ = 832500000).
- NSE/BSE cash: the ``-EQ`` series suffix is dropped (``RELIANCE-EQ`` → ``RELIANCE.NSE``);
  other series keep theirs (``XYZ-BE.NSE``) because they are separate instruments.
- ``AMXIDX`` rows are indices: ``NSE``/``BSE`` become ``NSE_INDEX``/``BSE_INDEX`` and the display
  name, without spaces, goes through the model's index aliases (``Nifty 50`` →
  ``NIFTY50.NSE_INDEX``, ``Nifty Fin Service`` → ``NIFTYFINSERVICE.NSE_INDEX``).
- Derivatives are rebuilt from their fields, not from Angel's ``symbol`` (whose date format
  differs between NFO and BFO/MCX/CDS): ``name + DDMMMYY + (FUT | strike + CE/PE)``.
- Rows the canonical vocabulary cannot name are skipped and counted by reason: NCDEX and MCX
  indices (no exchange code), fractional option strikes (a ``.`` cannot appear in a symbol name),
  names with characters outside ``A-Z 0-9 & - _``, and malformed rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Final

import msgspec

from marketpulse.model import Exchange, SymbolError, normalize_symbol, parse_derivative_name
from marketpulse.store.instruments import InstrumentRecord

__all__ = ["MasterRow", "ParsedMaster", "decode_master", "parse_master", "parse_rows"]

_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
_MONTH_NUMBER: Final = {name: i + 1 for i, name in enumerate(_MONTHS)}

_SEGMENTS: Final[dict[str, Exchange]] = {
    "NSE": Exchange.NSE,
    "BSE": Exchange.BSE,
    "NFO": Exchange.NFO,
    "BFO": Exchange.BFO,
    "MCX": Exchange.MCX,
    "CDS": Exchange.CDS,
}
_INDEX_SEGMENTS: Final[dict[str, Exchange]] = {
    "NSE": Exchange.NSE_INDEX,
    "BSE": Exchange.BSE_INDEX,
}
_CASH: Final = frozenset({"NSE", "BSE"})
_STRIKE_1E7: Final = frozenset({"OPTCUR", "OPTIRC"})

Field = str | int | float | None


class MasterRow(msgspec.Struct, frozen=True):
    """One master row; fields are lenient because a few rows carry numbers or nulls."""

    token: Field = ""
    symbol: Field = ""
    name: Field = ""
    expiry: Field = ""
    strike: Field = ""
    lotsize: Field = ""
    instrumenttype: Field = ""
    exch_seg: Field = ""
    tick_size: Field = ""


class ParsedMaster(msgspec.Struct):
    records: list[InstrumentRecord]
    skipped: dict[str, int]

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"{len(self.records)} instruments" + (f"; skipped {skipped}" if skipped else "")


_rows_decoder = msgspec.json.Decoder(list[MasterRow])


def decode_master(raw: bytes) -> list[MasterRow]:
    """The master's JSON array; raises ``ValueError`` naming the problem if it is not one."""
    try:
        return _rows_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(
            f"the Angel One instrument master is not the expected JSON: {exc}"
        ) from exc


def parse_master(raw: bytes) -> ParsedMaster:
    return parse_rows(decode_master(raw))


def parse_rows(rows: Iterable[MasterRow]) -> ParsedMaster:
    records: list[InstrumentRecord] = []
    skipped: Counter[str] = Counter()
    for row in rows:
        out = parse_row(row)
        if isinstance(out, InstrumentRecord):
            records.append(out)
        else:
            skipped[out] += 1
    return ParsedMaster(records, dict(skipped))


def parse_row(row: MasterRow) -> InstrumentRecord | str:
    """The canonical record of one row, or the reason it is skipped."""
    token = _text(row.token)
    segment = _text(row.exch_seg).upper()
    kind = _text(row.instrumenttype).upper()
    broker_symbol = _text(row.symbol)
    name = _text(row.name)
    if not token or not segment or not broker_symbol:
        return "malformed rows"
    lot = _number(row.lotsize)
    tick = _number(row.tick_size)
    lot_size = int(lot) if lot is not None and lot >= 1 else 1
    tick_size = round(tick / 100.0, 6) if tick is not None and tick > 0 else 0.0
    if kind == "AMXIDX":
        exchange = _INDEX_SEGMENTS.get(segment)
        if exchange is None:
            return f"{segment} indices (no canonical exchange)"
        symbol = _index_symbol(broker_symbol, name, exchange)
        if symbol is None:
            return "unnameable instruments"
        return InstrumentRecord(symbol, exchange.value, token, broker_symbol, name or None,
                                "INDEX", 1, tick_size)  # fmt: skip
    exchange = _SEGMENTS.get(segment)
    if exchange is None:
        return f"{segment} instruments (no canonical exchange)"
    if kind.startswith(("FUT", "OPT")):
        return _derivative(row, token, exchange, kind, broker_symbol, name, lot_size, tick_size)
    if segment not in _CASH:
        return f"{segment} {kind or 'untyped'} rows (not a future or option)"
    base = broker_symbol[:-3] if broker_symbol.upper().endswith("-EQ") else broker_symbol
    try:
        symbol = normalize_symbol(base.upper(), exchange)
    except SymbolError:
        return "unnameable instruments"
    if not symbol.endswith(f".{exchange.value}"):
        return "unnameable instruments"  # an index alias (e.g. a stock named NIFTY)
    return InstrumentRecord(symbol, exchange.value, token, broker_symbol, name or None, "EQ",
                            lot_size, tick_size)  # fmt: skip


def _derivative(
    row: MasterRow,
    token: str,
    exchange: Exchange,
    kind: str,
    broker_symbol: str,
    name: str,
    lot_size: int,
    tick_size: float,
) -> InstrumentRecord | str:
    expiry = parse_expiry(_text(row.expiry))
    underlying = name.upper().replace(" ", "")
    if expiry is None or not underlying:
        return "malformed rows"
    code = f"{expiry.day:02d}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"
    strike: float | None = None
    if kind.startswith("FUT"):
        instrument_type = "FUT"
        local = f"{underlying}{code}FUT"
    else:
        right = broker_symbol.upper()[-2:]
        raw_strike = _number(row.strike)
        if right not in ("CE", "PE") or raw_strike is None or raw_strike <= 0:
            return "malformed rows"
        strike = raw_strike / (1e7 if kind in _STRIKE_1E7 else 100.0)
        strike = round(strike, 6)
        if strike != math.floor(strike):
            return "options with fractional strikes"
        instrument_type = right
        local = f"{underlying}{code}{int(strike)}{right}"
    if parse_derivative_name(local) is None:
        return "unnameable instruments"
    try:
        symbol = normalize_symbol(f"{local}.{exchange.value}")
    except SymbolError:
        return "unnameable instruments"
    return InstrumentRecord(symbol, exchange.value, token, broker_symbol, name or None,
                            instrument_type, lot_size, tick_size, expiry, strike)  # fmt: skip


def _index_symbol(broker_symbol: str, name: str, exchange: Exchange) -> str | None:
    """An index's canonical symbol: its display name (``Nifty Fin Service``) without the
    characters a name cannot hold, through the model's aliases — the same rule the Kite master
    follows, so both providers name an index alike. Angel's short ``name`` is the fallback."""
    for raw in (broker_symbol, name):
        text = "".join(ch for ch in raw.upper() if ch.isalnum() or ch in "&-_")
        if not text:
            continue
        try:
            symbol = normalize_symbol(f"{exchange.value}:{text}")
        except SymbolError:
            continue
        if symbol.endswith(f".{exchange.value}"):
            return symbol
    return None


def parse_expiry(text: str) -> date | None:
    """``27NOV2025`` (Angel's format) as a date; None if empty or malformed.

    Parsed by hand rather than with ``strptime("%d%b%Y")``, whose month names follow the
    process locale.
    """
    raw = text.strip().upper()
    if len(raw) != 9 or not (raw[:2].isdigit() and raw[5:].isdigit()):
        return None
    month = _MONTH_NUMBER.get(raw[2:5])
    if month is None:
        return None
    try:
        return date(int(raw[5:]), month, int(raw[:2]))
    except ValueError:
        return None


def _text(value: Field) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _number(value: Field) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None

"""The canonical vocabulary every part of marketpulse speaks: exchanges, symbols, ticks, candles.

Field names of :class:`Tick` are a public contract (ARCHITECTURE §3): the recorder, the Redis
streams and the WebSocket API all emit exactly these names, so they must never be renamed.
``msgspec`` structs keep construction and JSON encoding cheap on the hot path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Final

import msgspec


class Exchange(StrEnum):
    """Canonical exchange/segment codes."""

    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    CDS = "CDS"
    BCD = "BCD"
    MCX = "MCX"
    NCO = "NCO"
    NSE_INDEX = "NSE_INDEX"
    BSE_INDEX = "BSE_INDEX"
    NASDAQ = "NASDAQ"
    NYSE = "NYSE"
    AMEX = "AMEX"
    LSE = "LSE"
    CRYPTO = "CRYPTO"
    FX = "FX"


class Mode(StrEnum):
    """Subscription depth: last price only, quote (OHLC/volume), or full (with market depth)."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


class DepthLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One level of the order book; serialised as ``[price, qty, orders]``."""

    price: float
    qty: int
    orders: int = 0


class Tick(msgspec.Struct, omit_defaults=True, gc=False):
    """One normalised market update, whatever broker it came from.

    Prices are already in rupees (or venue currency), timestamps are UTC: ``ts_exchange`` and
    ``ts_last_trade`` in epoch milliseconds, ``ts_recv`` in epoch nanoseconds. Absent values are
    ``None`` and are omitted from the JSON form. ``ts_exchange`` is never invented.
    """

    source: str
    token: str
    exchange: str
    mode: str
    ltp: float
    symbol: str | None = None
    ltq: int | None = None
    atp: float | None = None
    volume: int | None = None
    total_buy_qty: int | None = None
    total_sell_qty: int | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    change: float | None = None
    change_pct: float | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    upper_circuit: float | None = None
    lower_circuit: float | None = None
    high_52w: float | None = None
    low_52w: float | None = None
    ts_exchange: int | None = None
    ts_last_trade: int | None = None
    ts_recv: int | None = None
    bids: list[DepthLevel] | None = None
    asks: list[DepthLevel] | None = None

    @property
    def key(self) -> str:
        """The identity used for snapshots and WebSocket channels: the symbol when known."""
        return self.symbol if self.symbol is not None else f"{self.source}:{self.token}"


TICK_FIELDS: Final[tuple[str, ...]] = Tick.__struct_fields__

_tick_encoder = msgspec.json.Encoder()
_tick_decoder = msgspec.json.Decoder(Tick)
_tick_list_decoder = msgspec.json.Decoder(list[Tick])


def encode_tick(tick: Tick) -> bytes:
    """The canonical JSON form of a tick (absent fields omitted)."""
    return _tick_encoder.encode(tick)


def decode_tick(data: bytes | str) -> Tick:
    """Parse the canonical JSON form; raises ``msgspec.ValidationError`` on a bad document."""
    return _tick_decoder.decode(data)


def decode_ticks(data: bytes | str) -> list[Tick]:
    """Parse a JSON array of ticks."""
    return _tick_list_decoder.decode(data)


def price_change(ltp: float, close: float | None) -> tuple[float | None, float | None]:
    """``(change, change_pct)`` against the previous close, as every feed derives them."""
    if close is None or close == 0:
        return None, None
    change = ltp - close
    return change, change * 100.0 / close


class Candle(msgspec.Struct, omit_defaults=True):
    """An OHLCV bar aligned to the exchange session; ``volume`` comes from cumulative volume."""

    symbol: str
    interval: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    oi: int | None = None
    ticks: int = 0
    status: str = "live"
    adj_close: float | None = None
    """Close adjusted for splits and dividends, where the provider gives it (daily bars)."""


class Instrument(msgspec.Struct, omit_defaults=True):
    """An entry of the instrument master, independent of any broker."""

    symbol: str
    exchange: Exchange
    name: str | None = None
    instrument_type: str = "EQ"
    lot_size: int = 1
    tick_size: float = 0.05
    expiry: date | None = None
    strike: float | None = None
    isin: str | None = None
    id: int | None = None

    @property
    def canonical(self) -> str:
        return f"{self.symbol}.{self.exchange.value}"


# --------------------------------------------------------------------------- symbols


class SymbolError(ValueError):
    """A symbol that cannot be understood; the message says what form is expected."""


class Symbol(msgspec.Struct, frozen=True):
    """A parsed canonical symbol ``NAME.EXCHANGE``."""

    name: str
    exchange: Exchange

    def __str__(self) -> str:
        return f"{self.name}.{self.exchange.value}"


# Index names as users and brokers write them → canonical (name, exchange).
_INDEX_ALIASES: Final[dict[str, tuple[str, Exchange]]] = {
    "^NSEI": ("NIFTY50", Exchange.NSE_INDEX),
    "^NSEBANK": ("NIFTYBANK", Exchange.NSE_INDEX),
    "^CNXIT": ("NIFTYIT", Exchange.NSE_INDEX),
    "^INDIAVIX": ("INDIAVIX", Exchange.NSE_INDEX),
    "^BSESN": ("SENSEX", Exchange.BSE_INDEX),
    "NIFTY 50": ("NIFTY50", Exchange.NSE_INDEX),
    "NIFTY50": ("NIFTY50", Exchange.NSE_INDEX),
    "NIFTY": ("NIFTY50", Exchange.NSE_INDEX),
    "NIFTY BANK": ("NIFTYBANK", Exchange.NSE_INDEX),
    "NIFTYBANK": ("NIFTYBANK", Exchange.NSE_INDEX),
    "BANKNIFTY": ("NIFTYBANK", Exchange.NSE_INDEX),
    "NIFTY IT": ("NIFTYIT", Exchange.NSE_INDEX),
    "NIFTYIT": ("NIFTYIT", Exchange.NSE_INDEX),
    "INDIA VIX": ("INDIAVIX", Exchange.NSE_INDEX),
    "INDIAVIX": ("INDIAVIX", Exchange.NSE_INDEX),
    "SENSEX": ("SENSEX", Exchange.BSE_INDEX),
}

# Short exchange forms that mean the index segment when the name is a known index.
_INDEX_SEGMENT: Final[dict[Exchange, Exchange]] = {
    Exchange.NSE: Exchange.NSE_INDEX,
    Exchange.BSE: Exchange.BSE_INDEX,
}

_YAHOO_SUFFIXES: Final[dict[str, Exchange]] = {"NS": Exchange.NSE, "BO": Exchange.BSE}

_NAME_RE: Final = re.compile(r"^[A-Z0-9][A-Z0-9&_\-]{0,39}$")
_DERIVATIVE_RE: Final = re.compile(
    r"^(?P<underlying>[A-Z0-9&\-]+?)(?P<expiry>\d{2}(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)\d{2})"
    r"(?:(?P<fut>FUT)|(?P<strike>\d+(?:\.\d+)?)(?P<right>CE|PE))$"
)


def _exchange(code: str, original: str) -> Exchange:
    try:
        return Exchange(code)
    except ValueError:
        known = ", ".join(e.value for e in Exchange)
        raise SymbolError(
            f"unknown exchange {code!r} in symbol {original!r}; expected one of {known}"
        ) from None


def _index_or_plain(name: str, exchange: Exchange) -> Symbol:
    alias = _INDEX_ALIASES.get(name)
    if alias is not None and _INDEX_SEGMENT.get(exchange, exchange) == alias[1]:
        return Symbol(alias[0], alias[1])
    if not _NAME_RE.match(name):
        raise SymbolError(
            f"invalid instrument name {name!r}: use letters, digits, '&', '-' or '_' "
            "(for example RELIANCE.NSE)"
        )
    return Symbol(name, exchange)


def parse_symbol(text: str, default_exchange: Exchange | None = None) -> Symbol:
    """Normalise any accepted spelling to a canonical :class:`Symbol`.

    Accepted: ``RELIANCE.NSE``, ``NSE:RELIANCE``, ``RELIANCE.NS``/``.BO`` (Yahoo), index
    aliases such as ``^NSEI``, ``NIFTY50.NSE`` or ``NSE:NIFTY 50`` (→ ``NIFTY50.NSE_INDEX``),
    and a bare name when ``default_exchange`` is given.
    """
    raw = text.strip().upper()
    if not raw:
        raise SymbolError("empty symbol; expected NAME.EXCHANGE, for example RELIANCE.NSE")
    alias = _INDEX_ALIASES.get(raw)
    if alias is not None and raw.startswith("^"):
        return Symbol(alias[0], alias[1])
    if ":" in raw:
        code, _, name = raw.partition(":")
        if not name:
            raise SymbolError(f"symbol {text!r} has no name after ':'")
        return _index_or_plain(name.strip(), _exchange(code.strip(), text))
    if "." in raw:
        name, _, code = raw.rpartition(".")
        if not name:
            raise SymbolError(f"symbol {text!r} has no name before '.'")
        exchange = _YAHOO_SUFFIXES.get(code)
        return _index_or_plain(name, exchange if exchange is not None else _exchange(code, text))
    if alias is not None:
        return Symbol(alias[0], alias[1])
    if default_exchange is not None:
        return _index_or_plain(raw, default_exchange)
    raise SymbolError(
        f"symbol {text!r} has no exchange; write it as NAME.EXCHANGE, for example {raw}.NSE"
    )


def normalize_symbol(text: str, default_exchange: Exchange | None = None) -> str:
    """``parse_symbol`` as a string: the one form used in keys, channels and tables."""
    return str(parse_symbol(text, default_exchange))


class DerivativeName(msgspec.Struct, frozen=True):
    """The parts of an F&O name such as ``NIFTY27NOV2524500CE``."""

    underlying: str
    expiry: date
    instrument_type: str  # FUT, CE or PE
    strike: float | None = None


def parse_derivative_name(name: str) -> DerivativeName | None:
    """Split ``UNDERLYING + DDMMMYY + (FUT | strike + CE/PE)``; ``None`` if it is not one."""
    match = _DERIVATIVE_RE.match(name.upper())
    if match is None:
        return None
    expiry = datetime.strptime(match["expiry"], "%d%b%y").date()
    if match["fut"]:
        return DerivativeName(match["underlying"], expiry, "FUT")
    return DerivativeName(match["underlying"], expiry, match["right"], float(match["strike"]))


def format_strike(strike: float) -> str:
    """A strike as canonical option names write it: ``24500`` for 24500.0, ``83_25`` for 83.25
    (``.`` separates the exchange in a symbol, so fractional strikes write it as ``_``)."""
    text = f"{strike:.7f}".rstrip("0").rstrip(".") if strike else "0"
    return text.replace(".", "_")

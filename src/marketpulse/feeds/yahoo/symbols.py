"""Yahoo's global symbols ↔ marketpulse's canonical symbols (spec §A6), as pure functions.

Yahoo names an instrument by one string whose suffix or prefix says where it trades:
``RELIANCE.NS`` (NSE), ``RELIANCE.BO`` (BSE), ``^NSEI`` / ``^BSESN`` (indices), ``VOD.L``
(London), ``USDINR=X`` (FX), ``BTC-USD`` (crypto) and bare ``AAPL`` (a US listing — *which* US
exchange only the message's ``exchange`` code says: ``NMS`` Nasdaq, ``NYQ`` NYSE). The canonical
form is ``NAME.EXCHANGE`` (:mod:`marketpulse.model`). Instruments without a canonical exchange
(``^GSPC``, futures such as ``ES=F``) map to ``None``: their ticks carry no symbol and are keyed
``yahoo:<id>``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from marketpulse.model import Exchange, Symbol, SymbolError, parse_symbol

EXCHANGE_CODES: Final[dict[str, Exchange]] = {
    "NSI": Exchange.NSE, "BSE": Exchange.BSE, "NMS": Exchange.NASDAQ, "NGM": Exchange.NASDAQ,
    "NCM": Exchange.NASDAQ, "NAS": Exchange.NASDAQ, "NYQ": Exchange.NYSE, "ASE": Exchange.AMEX,
    "LSE": Exchange.LSE, "CCC": Exchange.CRYPTO, "CCY": Exchange.FX,
}  # fmt: skip
"""Yahoo's exchange codes (message field 5, chart ``meta.exchangeName``) → canonical exchange."""

CODE_OF_EXCHANGE: Final[dict[Exchange, str]] = {
    Exchange.NSE: "NSI", Exchange.BSE: "BSE", Exchange.NSE_INDEX: "NSI", Exchange.BSE_INDEX: "BSE",
    Exchange.NASDAQ: "NMS", Exchange.NYSE: "NYQ", Exchange.AMEX: "ASE", Exchange.LSE: "LSE",
    Exchange.CRYPTO: "CCC", Exchange.FX: "CCY",
}  # fmt: skip
"""The Yahoo exchange code the emulator stamps on each canonical exchange."""

INDEX_IDS: Final[dict[str, str]] = {
    "NIFTY50.NSE_INDEX": "^NSEI", "NIFTYBANK.NSE_INDEX": "^NSEBANK",
    "NIFTYIT.NSE_INDEX": "^CNXIT", "INDIAVIX.NSE_INDEX": "^INDIAVIX",
    "SENSEX.BSE_INDEX": "^BSESN",
}  # fmt: skip
"""Canonical index → Yahoo id (the reverse of the ``^`` aliases :func:`parse_symbol` knows)."""

_SUFFIXES: Final[dict[Exchange, str]] = {
    Exchange.NSE: ".NS", Exchange.BSE: ".BO", Exchange.LSE: ".L",
}  # fmt: skip
_BARE: Final = frozenset({Exchange.NASDAQ, Exchange.NYSE, Exchange.AMEX, Exchange.CRYPTO})
_FIAT: Final = frozenset({"USD", "EUR", "GBP", "INR", "JPY", "USDT", "USDC", "BTC", "ETH"})


def to_yahoo(symbol: Symbol | str) -> str:
    """The Yahoo id of a canonical symbol; :class:`SymbolError` if Yahoo has no such market."""
    parsed = parse_symbol(symbol) if isinstance(symbol, str) else symbol
    exchange = parsed.exchange
    if exchange in (Exchange.NSE_INDEX, Exchange.BSE_INDEX):
        found = INDEX_IDS.get(str(parsed))
        if found is None:
            raise SymbolError(
                f"yahoo: no Yahoo id known for the index {parsed}; known: {', '.join(INDEX_IDS)}"
            )
        return found
    suffix = _SUFFIXES.get(exchange)
    if suffix is not None:
        return parsed.name + suffix
    if exchange in _BARE:
        return parsed.name
    if exchange is Exchange.FX:
        return parsed.name + "=X"
    raise SymbolError(
        f"yahoo: {parsed} trades on {exchange.value}, which Yahoo's streamer does not carry; "
        "Yahoo has NSE, BSE, their indices, NASDAQ, NYSE, AMEX, LSE, CRYPTO and FX"
    )


@lru_cache(maxsize=8192)
def from_yahoo(yahoo_id: str, exchange_code: str = "") -> tuple[str, str] | None:
    """``(canonical symbol, exchange)`` of a Yahoo id, or ``None`` when there is no canonical
    form. ``exchange_code`` (the message's field 5) places bare US ids (``AAPL`` + ``NMS``)."""
    text = yahoo_id.strip().upper()
    if not text:
        return None
    name, exchange = _split(text, exchange_code)
    if exchange is None:
        return None
    try:
        parsed = parse_symbol(f"{name}.{exchange.value}" if name else text)
    except SymbolError:
        return None
    return str(parsed), parsed.exchange.value


def _split(text: str, exchange_code: str) -> tuple[str, Exchange | None]:
    """``(name, exchange)`` from the id's form; ``("", …)`` when ``parse_symbol`` knows it."""
    if text.startswith("^"):
        try:
            parsed = parse_symbol(text)
        except SymbolError:
            return "", None
        return "", parsed.exchange
    if text.endswith((".NS", ".BO")):
        return "", Exchange.NSE
    if text.endswith(".L"):
        return text[:-2], Exchange.LSE
    if text.endswith("=X"):
        return text[:-2], Exchange.FX
    if "=" in text or "." in text:
        return "", None
    known = EXCHANGE_CODES.get(exchange_code)
    if known is not None and known not in (Exchange.NSE, Exchange.BSE):
        return text, known
    base, dash, quote = text.rpartition("-")
    if dash and base and quote in _FIAT:
        return text, Exchange.CRYPTO
    return text, None

"""Yahoo Finance streamer wire format: JSON envelopes around base64 ``PricingData`` protobufs.

Pure functions (no I/O, no logging) shared by the feed, the emulator, replay and the benchmark.
Facts are from ``shared/protocols/yahoo.md`` (§A2–A5); choices where it leaves room are in
``docs/brokers/yahoo.md``.

* Client → server: ``{"subscribe": [...]}`` / ``{"unsubscribe": [...]}`` text frames.
* Server → client (§A3): ``{"type": "pricing", "message": "<base64>"}`` (``?version=2``) or the
  bare base64 string (legacy endpoint); both are accepted.
* ``PricingData`` (§A4) is read by a small hand-written proto3 reader — varint, zig-zag sint64,
  fixed32 floats, fixed64 doubles, length-delimited strings, any field order, unknown fields
  skipped — so no protobuf library is needed at run time. Fields holding their default are not
  on the wire, so "absent" and "zero" are the same thing; :func:`to_tick` treats a zero price,
  volume or OHLC value as "not given".

Floats are float32 on the wire: 3180.55 arrives as 3180.550048828125. :func:`to_tick` rounds
prices to the message's ``price_hint`` decimals and other floats to the shortest decimal that
reads back as the same float32 (what protobuf's own JSON printer shows).

:func:`decode_frame` never raises: a frame it cannot read comes back with an error description
(a short kind plus detail) and no tick. Encoding (for the emulator and tests) is strict.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from marketpulse.feeds.yahoo.symbols import from_yahoo
from marketpulse.model import DepthLevel, Tick

SOURCE: Final = "yahoo"

# --------------------------------------------------------------------------- PricingData (§A4)


class PricingData(msgspec.Struct):
    """One streamer message, field for field (names as yfinance's ``pricing.proto``).

    Floats hold the float32 value widened to a Python float; 64-bit integers are plain ints;
    ``options_type`` is the raw varint (see :func:`options_type_name`).
    """

    id: str = ""
    price: float = 0.0
    time: int = 0
    currency: str = ""
    exchange: str = ""
    quote_type: int = 0
    market_hours: int = 0
    change_percent: float = 0.0
    day_volume: int = 0
    day_high: float = 0.0
    day_low: float = 0.0
    change: float = 0.0
    short_name: str = ""
    expire_date: int = 0
    open_price: float = 0.0
    previous_close: float = 0.0
    strike_price: float = 0.0
    underlying_symbol: str = ""
    open_interest: int = 0
    options_type: int = 0
    mini_option: int = 0
    last_size: int = 0
    bid: float = 0.0
    bid_size: int = 0
    ask: float = 0.0
    ask_size: int = 0
    price_hint: int = 0
    vol_24hr: int = 0
    vol_all_currencies: int = 0
    from_currency: str = ""
    last_market: str = ""
    circulating_supply: float = 0.0
    market_cap: float = 0.0


FIELD_NAMES: Final[tuple[str, ...]] = PricingData.__struct_fields__
"""Field ``n`` (1-based) of the proto is ``FIELD_NAMES[n - 1]``: the struct follows the table."""

STRING, FLOAT, DOUBLE, SINT64, INT32, RAW = "string", "float", "double", "sint64", "int32", "raw"
FIELD_KINDS: Final[tuple[str, ...]] = (
    STRING, FLOAT, SINT64, STRING, STRING, INT32, INT32, FLOAT, SINT64, FLOAT, FLOAT, FLOAT,
    STRING, SINT64, FLOAT, FLOAT, FLOAT, STRING, SINT64, RAW, SINT64, SINT64, FLOAT, SINT64,
    FLOAT, SINT64, SINT64, SINT64, SINT64, STRING, STRING, DOUBLE, DOUBLE,
)  # fmt: skip
"""Proto type of field ``n`` at index ``n - 1``."""
_WIRE_TYPE: Final = {STRING: 2, FLOAT: 5, DOUBLE: 1, SINT64: 0, INT32: 0, RAW: 0}

QUOTE_TYPES: Final[dict[int, str]] = {
    0: "NONE", 5: "ALTSYMBOL", 7: "HEARTBEAT", 8: "EQUITY", 9: "INDEX", 11: "MUTUALFUND",
    12: "MONEYMARKET", 13: "OPTION", 14: "CURRENCY", 15: "WARRANT", 17: "BOND", 18: "FUTURE",
    20: "ETF", 23: "COMMODITY", 28: "ECNQUOTE", 41: "CRYPTOCURRENCY", 42: "INDICATOR",
    1000: "INDUSTRY",
}  # fmt: skip
EQUITY, INDEX, HEARTBEAT, CRYPTOCURRENCY = 8, 9, 7, 41
MARKET_HOURS: Final[dict[int, str]] = {
    0: "PRE_MARKET", 1: "REGULAR_MARKET", 2: "POST_MARKET", 3: "EXTENDED_HOURS_MARKET",
    4: "OVERNIGHT_MARKET",
}  # fmt: skip

_N_FIELDS: Final = len(FIELD_NAMES)
_DEFAULTS: Final = tuple(getattr(PricingData(), name) for name in FIELD_NAMES)
_F32: Final = struct.Struct("<f")
_F64: Final = struct.Struct("<d")
_F32_UNPACK = _F32.unpack_from
_F64_UNPACK = _F64.unpack_from
_U64_MASK: Final = (1 << 64) - 1


class ProtoError(ValueError):
    """Bytes that are not a well-formed ``PricingData``; the message says what was wrong."""


def options_type_name(raw: int) -> str:
    """``CALL``/``PUT`` from field 20's raw varint.

    yfinance declares the field ``sint64``, community protos an enum, and which one Yahoo
    sends is unknown (spec §A4). PUT is raw 1 as an enum and raw 2 as zig-zag ``sint64`` 1, so
    both read as PUT; raw 0 is CALL either way.
    """
    if raw == 0:
        return "CALL"
    if raw in (1, 2):
        return "PUT"
    return f"UNKNOWN({raw})"


_OPS: Final = {STRING: 0, FLOAT: 1, SINT64: 2, INT32: 3, RAW: 4, DOUBLE: 5}
_TAGS: Final[dict[int, tuple[int, int]]] = {
    (number << 3) | _WIRE_TYPE[kind]: (number - 1, _OPS[kind])
    for number, kind in enumerate(FIELD_KINDS, 1)
}
"""Full key (field number and the wire type the schema expects) → (slot, how to read it)."""


def decode_pricing(data: bytes) -> PricingData:
    """Parse one ``PricingData``; :class:`ProtoError` on malformed bytes.

    Each key is looked up in :data:`_TAGS`; a known field with an unexpected wire type and
    unknown fields are skipped by their wire type (as protobuf parsers do); groups (wire types
    3/4) and 6/7 are errors.
    """
    values = list(_DEFAULTS)
    tags = _TAGS
    n = len(data)
    i = 0
    unpack_f32, unpack_f64 = _F32_UNPACK, _F64_UNPACK
    try:
        while i < n:
            key = data[i]
            i += 1
            if key & 0x80:
                key, i = _varint(data, i - 1)
            found = tags.get(key)
            if found is None:
                i = _skip(data, i, key)
                continue
            slot, op = found
            if op == 1:  # float32 (unpack_from raises struct.error past the end)
                values[slot] = unpack_f32(data, i)[0]
                i += 4
            elif op == 0:  # string
                length = data[i]
                i += 1
                if length & 0x80:
                    length, i = _varint(data, i - 1)
                end = i + length
                if end > n:
                    raise ProtoError(f"field {slot + 1}: length {length} runs past the end")
                values[slot] = data[i:end].decode("utf-8")
                i = end
            elif op == 5:  # double
                values[slot] = unpack_f64(data, i)[0]
                i += 8
            else:  # varints, inline: sint64 (zig-zag), int32 (two's complement), raw
                value = data[i]
                i += 1
                if value & 0x80:
                    value &= 0x7F
                    shift = 7
                    while True:
                        byte = data[i]
                        i += 1
                        value |= (byte & 0x7F) << shift
                        if not byte & 0x80:
                            break
                        shift += 7
                        if shift >= 70:
                            raise ProtoError("varint longer than 10 bytes")
                    value &= _U64_MASK
                if op == 2:
                    values[slot] = (value >> 1) ^ -(value & 1)
                elif op == 3:
                    value &= 0xFFFFFFFF
                    values[slot] = value - (1 << 32) if value & 0x80000000 else value
                else:
                    values[slot] = value
    except (IndexError, struct.error):
        raise ProtoError(f"truncated message ({n} bytes)") from None
    except UnicodeDecodeError:
        raise ProtoError("a string field is not UTF-8") from None
    return PricingData(*values)


def _skip(data: bytes, i: int, key: int) -> int:
    """The index after the value of a field we do not read."""
    wire, n = key & 7, len(data)
    if key >> 3 == 0:
        raise ProtoError(f"field number 0 at byte {i}")
    if wire == 0:
        return _varint(data, i)[1]
    if wire == 5:
        i += 4
    elif wire == 1:
        i += 8
    elif wire == 2:
        length, i = _varint(data, i)
        i += length
    else:
        raise ProtoError(f"field {key >> 3}: unsupported wire type {wire}")
    if i > n:
        raise ProtoError(f"field {key >> 3} runs past the end")
    return i


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``data[i:]`` and the index after it (at most 10 bytes)."""
    result = 0
    shift = 0
    n = len(data)
    while True:
        if i >= n:
            raise ProtoError("truncated varint")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _U64_MASK, i
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def _put_varint(out: bytearray, value: int) -> None:
    value &= _U64_MASK
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_pricing(message: PricingData) -> bytes:
    """Serialise like the official proto3 serializer: ascending field numbers, defaults omitted
    (byte-identical to ``PricingData.SerializeToString()`` for the spec's vectors)."""
    out = bytearray()
    for number, (name, kind) in enumerate(zip(FIELD_NAMES, FIELD_KINDS, strict=True), 1):
        value = getattr(message, name)
        if not value:
            continue
        _put_varint(out, number << 3 | _WIRE_TYPE[kind])
        if kind == STRING:
            raw = value.encode("utf-8")
            _put_varint(out, len(raw))
            out += raw
        elif kind == FLOAT:
            out += _F32.pack(value)
        elif kind == DOUBLE:
            out += _F64.pack(value)
        elif kind == SINT64:
            _put_varint(out, (value << 1) ^ (value >> 63))
        else:  # int32 (negative → 10-byte two's complement) and the raw varint
            _put_varint(out, value)
    return bytes(out)


# --------------------------------------------------------------------------- envelopes (§A3)


class _Envelope(msgspec.Struct):
    type: str | None = None
    message: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode_frame(message: PricingData, *, legacy: bool = False) -> str:
    """A server text frame: ``{"type": "pricing", "message": …}`` or, ``legacy``, bare base64."""
    text = base64.b64encode(encode_pricing(message)).decode("ascii")
    if legacy:
        return text
    return '{"type": "pricing", "message": "' + text + '"}'


def unwrap(frame: str | bytes) -> str | None:
    """The base64 payload of a server frame (either envelope); ``None`` for a JSON object of
    another ``type`` (nothing to decode). Raises ``ValueError`` for an unreadable frame."""
    text = frame.decode("utf-8") if isinstance(frame, bytes | bytearray) else frame
    text = text.strip()
    if text.startswith("{"):
        try:
            envelope = _envelope_decoder.decode(text)
        except msgspec.DecodeError as exc:
            raise ValueError(f"bad JSON envelope: {exc}") from None
        if envelope.type is not None and envelope.type != "pricing":
            return None
        return envelope.message or ""
    return text


def decode_base64(text: str) -> PricingData:
    """``PricingData`` of a base64 message (standard alphabet; missing padding is tolerated)."""
    try:
        raw = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtoError(f"bad base64: {exc}") from None
    return decode_pricing(raw)


# --------------------------------------------------------------------------- ticks


def f32_short(value: float) -> float:
    """The shortest decimal that is the same float32 as ``value`` (0.8100000023841858 → 0.81).

    This is what protobuf's JSON printer (and so yfinance) shows for a float field.
    """
    if value != value or value in (math.inf, -math.inf):
        return value
    bits = _F32.pack(value)
    for digits in (6, 7, 8):
        short = float(f"{value:.{digits}g}")
        if _F32.pack(short) == bits:
            return short
    return float(f"{value:.9g}")


def to_tick(
    message: PricingData, ts_recv: int | None = None, *, mode: str = "quote"
) -> Tick | None:
    """The canonical tick of one message; ``None`` when it has no id or no price.

    ``ts_exchange`` = ``time`` (already epoch milliseconds, UTC); prices rounded to
    ``price_hint`` decimals (shortest float32 decimals without a hint), ``change_pct`` to the 7
    significant digits a float32 holds; zero/absent values stay ``None``; ``close`` =
    ``previous_close`` with ``change``/``change_pct`` from the message, or derived from ``close``
    when the message left them out; ``volume`` = ``day_volume``; one-level ``bids``/``asks``
    when bid/ask are present. The symbol and exchange come from
    :func:`~marketpulse.feeds.yahoo.symbols.from_yahoo`
    (unmapped ids keep no symbol and Yahoo's exchange code).
    """
    ident = message.id
    price = message.price
    if not ident or not price:
        return None
    hint = message.price_hint
    if 0 < hint <= 10:
        ltp = round(price, hint)
        close = round(message.previous_close, hint) if message.previous_close else None
        change = round(message.change, hint) if message.change else None
        open_ = round(message.open_price, hint) if message.open_price else None
        high = round(message.day_high, hint) if message.day_high else None
        low = round(message.day_low, hint) if message.day_low else None
    else:
        short = f32_short
        ltp = short(price)
        close = short(message.previous_close) if message.previous_close else None
        change = short(message.change) if message.change else None
        open_ = short(message.open_price) if message.open_price else None
        high = short(message.day_high) if message.day_high else None
        low = short(message.day_low) if message.day_low else None
    mapped = from_yahoo(ident, message.exchange)
    symbol, exchange = mapped if mapped is not None else (None, message.exchange)
    percent = message.change_percent
    # float32 carries about 7 significant digits: more would be noise of the encoding
    change_pct = float(f"{percent:.7g}") if percent else None
    if close is not None:
        if change is None:
            change = round(ltp - close, 10)
        if change_pct is None:
            change_pct = change * 100.0 / close
    bids = asks = None
    if message.bid:
        bids = [DepthLevel(round(message.bid, hint) if 0 < hint <= 10 else f32_short(message.bid),
                           message.bid_size, 0)]  # fmt: skip
    if message.ask:
        asks = [DepthLevel(round(message.ask, hint) if 0 < hint <= 10 else f32_short(message.ask),
                           message.ask_size, 0)]  # fmt: skip
    last_size = message.last_size
    return Tick(
        source=SOURCE, token=ident, exchange=exchange, mode=mode, ltp=ltp, symbol=symbol,
        ltq=last_size if last_size > 0 and message.quote_type != CRYPTOCURRENCY else None,
        volume=message.day_volume or None,
        open=open_, high=high, low=low,
        close=close, change=change, change_pct=change_pct,
        oi=message.open_interest or None,
        ts_exchange=message.time or None, ts_recv=ts_recv, bids=bids, asks=asks,
    )  # fmt: skip


class Decoded(msgspec.Struct):
    """What one frame held: at most one tick, or why there is none.

    ``error`` is ``"kind: detail"`` for a malformed frame; ``ignored`` is set for frames that are
    fine but carry no tick (another envelope ``type``, a heartbeat, an empty message).
    """

    tick: Tick | None = None
    error: str | None = None
    ignored: bool = False


_NOTHING: Final = Decoded(ignored=True)
_EMPTY: Final = PricingData()


def decode_frame(frame: str | bytes, ts_recv: int | None = None) -> Decoded:
    """One server frame → its tick; never raises (see :class:`Decoded`)."""
    try:
        payload = unwrap(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        return Decoded(error=f"envelope: {exc}")
    if not payload:
        return _NOTHING
    try:
        message = decode_base64(payload)
    except ProtoError as exc:
        return Decoded(error=f"protobuf: {exc}")
    tick = to_tick(message, ts_recv)
    if tick is None:
        if message.id or message == _EMPTY:
            return _NOTHING  # an empty message, a heartbeat or an instrument without a price
        return Decoded(error="protobuf: a message without an id")
    return Decoded(tick=tick)


# --------------------------------------------------------------------------- client messages


class ClientMessage(msgspec.Struct, frozen=True):
    """A decoded client request (for the emulator)."""

    action: str  # "subscribe" or "unsubscribe"
    symbols: tuple[str, ...]


def encode_subscribe(symbols: Iterable[str]) -> str:
    """``{"subscribe": [...]}`` with yfinance's separators."""
    return json.dumps({"subscribe": list(symbols)})


def encode_unsubscribe(symbols: Iterable[str]) -> str:
    return json.dumps({"unsubscribe": list(symbols)})


def decode_client_message(text: str | bytes) -> list[ClientMessage]:
    """The requests in one client frame; ``ValueError`` for anything the real server closes the
    connection on (non-JSON, unknown key, a list that is not of strings — spec §A2). ``{}`` and
    empty lists are valid and ask for nothing."""
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    out = []
    for action, symbols in body.items():
        if action not in ("subscribe", "unsubscribe"):
            raise ValueError(f"unknown key {action!r}")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ValueError(f"{action} must be a list of strings")
        out.append(ClientMessage(action, tuple(symbols)))
    return out


def pricing_of_tick(
    tick: Tick,
    *,
    yahoo_id: str,
    exchange_code: str,
    quote_type: int,
    currency: str,
    short_name: str = "",
    market_hours: int = 1,
    price_hint: int = 2,
) -> PricingData:
    """The message the emulator sends for a tick: ``time`` in whole seconds (as observed),
    change/percent against ``close``; no bid/ask (never populated in the real stream)."""
    ts = tick.ts_exchange if tick.ts_exchange is not None else (tick.ts_recv or 0) // 1_000_000
    return PricingData(
        id=yahoo_id, price=tick.ltp, time=ts - ts % 1000, currency=currency,
        exchange=exchange_code, quote_type=quote_type, market_hours=market_hours,
        change_percent=tick.change_pct or 0.0, day_volume=tick.volume or 0,
        day_high=tick.high or 0.0, day_low=tick.low or 0.0, change=tick.change or 0.0,
        short_name=short_name, open_price=tick.open or 0.0, previous_close=tick.close or 0.0,
        open_interest=tick.oi or 0, price_hint=price_hint,
    )  # fmt: skip


def message_dict(message: PricingData) -> dict[str, Any]:
    """The non-default fields, like yfinance's ``MessageToDict`` (but with real ints and the
    float32 values shortened): handy to compare with yfinance in tests."""
    out: dict[str, Any] = {}
    for name, kind in zip(FIELD_NAMES, FIELD_KINDS, strict=True):
        value = getattr(message, name)
        if value:
            out[name] = f32_short(value) if kind == FLOAT else value
    return out


def symbols_of(messages: Sequence[ClientMessage], action: str) -> list[str]:
    """Every symbol the messages ``action`` (in order, repeated ones once)."""
    return list(dict.fromkeys(s for m in messages if m.action == action for s in m.symbols))

"""Angel One SmartAPI WebSocket 2.0 wire format: binary market-data packets and JSON text.

Pure functions, no I/O and no logging: the client decodes with them, the emulator encodes with
them, and the tests prove that the two are inverses. Every offset, unit and quirk comes from
``shared/protocols/angelone.md`` (section numbers below refer to it); the mapping decisions are
summarised in ``docs/brokers/angelone-wire.md``.

Decoding is on the hot path of every Angel One tick, so it is written for CPython speed: one
precompiled :class:`struct.Struct` per packet kind unpacks the whole message in a single call,
the :class:`~marketpulse.model.Tick` is built once with positional arguments, and there are no
intermediate dicts. Malformed input never raises: :func:`decode_one` returns a
:class:`SkipReason` instead of a tick, and :func:`decode_packets` counts those per reason.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import Final, TypeAlias

import msgspec

from marketpulse import native
from marketpulse.model import DepthLevel, Exchange, Mode, Tick

__all__ = [
    "DEPTH20_LEVELS",
    "EXCHANGE_BY_TYPE",
    "EXCHANGE_TYPES",
    "PACKET_LENGTHS",
    "PING",
    "PONG",
    "PRICE_DIVISORS",
    "SOURCE",
    "WIRE_MODE_FOR",
    "Action",
    "DecodeResult",
    "ErrorMessage",
    "ExchangeType",
    "InvalidRequest",
    "Ping",
    "Pong",
    "SkipReason",
    "SubscriptionRequest",
    "TokenGroup",
    "UnknownText",
    "WireMode",
    "decode_one",
    "decode_packet",
    "decode_packets",
    "encode_error",
    "encode_packet",
    "encode_request",
    "encode_subscribe",
    "encode_unsubscribe",
    "parse_client_text",
    "parse_server_text",
]

SOURCE: Final = "angelone"

Buffer: TypeAlias = bytes | bytearray | memoryview


# --------------------------------------------------------------------------- codes (§2, §5)


class WireMode(IntEnum):
    """Subscription mode = byte 0 of every binary packet = ``params.mode`` of a request."""

    LTP = 1
    QUOTE = 2
    SNAP_QUOTE = 3
    DEPTH = 4  # 20-level depth, NSE_CM only, deprecated by Angel One since 2025-04-25


class Action(IntEnum):
    """``action`` of a request: there is no mode-change action, only (un)subscribe (§2)."""

    UNSUBSCRIBE = 0
    SUBSCRIBE = 1


class ExchangeType(IntEnum):
    """Angel's ``exchangeType`` codes (§5); 0, 6 and 8-12 are undefined."""

    NSE_CM = 1
    NSE_FO = 2
    BSE_CM = 3
    BSE_FO = 4
    MCX_FO = 5
    NCX_FO = 7
    CDE_FO = 13


NCDEX: Final = "NCDEX"
"""NCDEX commodity derivatives (exchangeType 7).

The canonical vocabulary has no NCDEX code yet, and ``NCO`` means *NSE* commodities there
(see ``kite.md``), so mapping NCDEX onto it would merge two exchanges; the instrument master's
own ``exch_seg`` spelling is used instead.
"""

EXCHANGE_BY_TYPE: Final[Mapping[int, str]] = {
    ExchangeType.NSE_CM: Exchange.NSE.value,
    ExchangeType.NSE_FO: Exchange.NFO.value,
    ExchangeType.BSE_CM: Exchange.BSE.value,
    ExchangeType.BSE_FO: Exchange.BFO.value,
    ExchangeType.MCX_FO: Exchange.MCX.value,
    ExchangeType.NCX_FO: NCDEX,
    ExchangeType.CDE_FO: Exchange.CDS.value,
}
"""exchangeType → canonical exchange of the decoded tick.

Indices travel as ordinary cash-segment tokens with no flag on the wire (§4.8), so types 1/3
decode as ``NSE``/``BSE``; relabelling an index to ``NSE_INDEX``/``BSE_INDEX`` needs the
instrument master and is the caller's job.
"""

EXCHANGE_TYPES: Final[Mapping[str, int]] = {
    **{name: int(code) for code, name in EXCHANGE_BY_TYPE.items()},
    Exchange.NSE_INDEX.value: ExchangeType.NSE_CM,
    Exchange.BSE_INDEX.value: ExchangeType.BSE_CM,
}
"""Canonical exchange → exchangeType, for subscriptions and the encoder (indices included)."""

PRICE_DIVISORS: Final[Mapping[int, int]] = {
    code: (10_000_000 if code == ExchangeType.CDE_FO else 100) for code in EXCHANGE_BY_TYPE
}
"""Wire price integer ÷ divisor = rupees: paise everywhere, 1e7 for currency derivatives (§5).

The CDE_FO divisor is the docs' figure and unverified (the SDKs return raw integers), but a
currency quote such as 83.2525 can only be carried as an integer with that precision.
Integers, not floats: CPython's int / int takes a fast path for operands below 2**53 and gives
the same correctly rounded result as float division, with fewer steps.
"""

WIRE_MODE_FOR: Final[Mapping[str, WireMode]] = {
    Mode.LTP.value: WireMode.LTP,
    Mode.QUOTE.value: WireMode.QUOTE,
    Mode.FULL.value: WireMode.SNAP_QUOTE,
}
"""Canonical subscription mode → the Angel mode that carries it (DEPTH is never chosen)."""

PACKET_LENGTHS: Final[Mapping[int, int]] = {
    WireMode.LTP: 51,
    WireMode.QUOTE: 123,
    WireMode.SNAP_QUOTE: 379,
    WireMode.DEPTH: 443,
}
"""Fixed length of each packet kind (§4.1); there is no length prefix to check against."""

BEST_FIVE_LEVELS: Final = 5
DEPTH20_LEVELS: Final = 20


# --------------------------------------------------------------------------- layouts (§4)

# Full layouts, one Struct per packet kind, used by the encoder (item order = wire order).
_LTP = struct.Struct("<BB25sqqq")  # mode, exch, token, seq, ts (ms), ltp
_QUOTE = struct.Struct(
    "<BB25sqqq"  # as LTP
    "qqqdd"  # ltq, atp, volume, total buy qty (float64), total sell qty (float64)
    "qqqq"  # open, high, low, close
)
_SNAP = struct.Struct(
    "<BB25sqqqqqqddqqqq"  # as QUOTE
    "qqq"  # last traded time (s), oi, oi change %
    + "HqqH" * 10  # best five: flag, qty, price, orders
    + "qqqq"  # upper circuit, lower circuit, 52w high, 52w low
)
_DEPTH = struct.Struct(
    "<BB25sqq"  # mode, exch, token, timestamp A, timestamp B
    + "iih" * 40  # 20 buy then 20 sell levels: qty, price, orders
)
if (_LTP.size, _QUOTE.size, _SNAP.size, _DEPTH.size) != (51, 123, 379, 443):  # pragma: no cover
    raise ImportError("Angel One packet layouts do not match their fixed lengths (§4.1)")

# Decode layouts: the same bytes, but fields the Tick does not carry (mode byte, sequence
# number, OI change %) are pad bytes, so the one unpack call allocates nothing for them and its
# tuple can be unpacked straight into local variables (cheaper than indexing it field by field).
# The exchange byte and the token field are read as one 26-byte key (see _instrument).
_unpack_ltp = struct.Struct("<x26s8xqq").unpack_from
_unpack_quote = struct.Struct("<x26s8xqqqqqddqqqq").unpack_from
_unpack_snap = struct.Struct("<x26s8xqqqqqddqqqqqq8x" + "HqqH" * 10 + "qqqq").unpack
"""Exact-size ``unpack`` (not ``unpack_from``): it raises struct.error unless the message is
379 bytes, which spares decode_one's hot path a length check (see there)."""
_unpack_best_five = struct.Struct("<147x" + "HqqH" * 10).unpack_from
_unpack_depth = struct.Struct("<x26sqq" + "iih" * 40).unpack_from

# The canonical Tick field order the positional constructor calls below rely on; checked at
# import so a reordering of model.Tick fails loudly instead of scrambling fields.
_TICK_POSITIONAL: Final = (
    "source",
    "token",
    "exchange",
    "mode",
    "ltp",
    "symbol",
    "ltq",
    "atp",
    "volume",
    "total_buy_qty",
    "total_sell_qty",
    "open",
    "high",
    "low",
    "close",
    "change",
    "change_pct",
    "oi",
    "oi_day_high",
    "oi_day_low",
    "upper_circuit",
    "lower_circuit",
    "high_52w",
    "low_52w",
    "ts_exchange",
    "ts_last_trade",
    "ts_recv",
    "bids",
    "asks",
)
if Tick.__struct_fields__[: len(_TICK_POSITIONAL)] != _TICK_POSITIONAL:  # pragma: no cover
    raise ImportError(
        "marketpulse.model.Tick fields were reordered; update _TICK_POSITIONAL and the "
        "positional Tick(...) calls in marketpulse.feeds.angelone.wire"
    )

_LTP_MODE: Final = Mode.LTP.value
_QUOTE_MODE: Final = Mode.QUOTE.value
_FULL_MODE: Final = Mode.FULL.value

# exchangeType byte → (canonical exchange, price divisor); a 256-slot tuple so the lookup is one
# index with no bounds check or hashing.
_EXCH: Final[tuple[tuple[str, int] | None, ...]] = tuple(
    (EXCHANGE_BY_TYPE[code], PRICE_DIVISORS[code]) if code in EXCHANGE_BY_TYPE else None
    for code in range(256)
)


# --------------------------------------------------------------------------- decode results


class SkipReason(StrEnum):
    """Why a binary message produced no tick (the counters' keys)."""

    EMPTY = "empty"
    UNKNOWN_MODE = "unknown_mode"  # byte 0 is not 1-4
    TRUNCATED = "truncated"  # shorter than its mode's fixed length
    BAD_LENGTH = "bad_length"  # longer than its mode's fixed length
    UNKNOWN_EXCHANGE = "unknown_exchange"  # byte 1 is not in §5
    BAD_TOKEN = "bad_token"  # empty or non-ASCII token field
    ERROR = "error"  # anything else unexpected (safety net; not reachable by design)


class DecodeResult:
    """Ticks decoded from a batch of binary messages plus skip counters per :class:`SkipReason`.

    A plain slotted class rather than a Struct because it is mutated in place while a batch is
    decoded; ``skipped`` only holds reasons that occurred, so the common all-good case costs no
    dict writes.
    """

    __slots__ = ("skipped", "ticks")

    def __init__(
        self, ticks: list[Tick] | None = None, skipped: dict[SkipReason, int] | None = None
    ) -> None:
        self.ticks: list[Tick] = [] if ticks is None else ticks
        self.skipped: dict[SkipReason, int] = {} if skipped is None else skipped

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def __repr__(self) -> str:
        return f"DecodeResult(ticks={len(self.ticks)}, skipped={dict(self.skipped)!r})"


# --------------------------------------------------------------------------- decoding helpers

_Instrument: TypeAlias = tuple[str, str, int]
"""(token, canonical exchange, price divisor) of one exchangeType + token field."""

_INSTRUMENTS: dict[bytes, _Instrument] = {}
"""Raw 26 bytes at offset 1 (exchangeType byte + 25-byte token field) → :data:`_Instrument`.

A memo, not state: subscriptions repeat the same few hundred tokens all day, so this turns an
exchange-table lookup, a partition and a decode per packet into one dict hit. Only valid
instruments are stored, and it is bounded, so garbage input cannot grow it.
"""
_TOKEN_CACHE_MAX: Final = 65_536
_instruments_get = _INSTRUMENTS.get


def _instrument(raw: bytes) -> _Instrument | SkipReason:
    """Resolve a memo miss: the exchange byte first (§5), then the NUL-padded token (§4.1).

    Parsers stop at the first NUL; an empty or non-ASCII token is invalid.
    """
    ex = _EXCH[raw[0]]
    if ex is None:
        return SkipReason.UNKNOWN_EXCHANGE
    text = raw[1:].partition(b"\0")[0]
    if not text:
        return SkipReason.BAD_TOKEN
    try:
        token = text.decode("ascii")
    except UnicodeDecodeError:
        return SkipReason.BAD_TOKEN
    if len(_INSTRUMENTS) >= _TOKEN_CACHE_MAX:
        _INSTRUMENTS.clear()
    instrument = _INSTRUMENTS[raw] = (token, ex[0], ex[1])
    return instrument


_trunc = math.trunc
"""float → int for the float64 quantity totals; half the cost of ``int()`` in CPython 3.11."""


def _finite_int(value: float) -> int | None:
    """A float64 quantity as int, or None when the wire holds NaN/inf (garbage, not a count)."""
    return int(value) if math.isfinite(value) else None


def _split_best_five(data: Buffer, div: int) -> tuple[list[DepthLevel], list[DepthLevel]]:
    """The general best-five path: split by flag, not by position (§4.5).

    Mirrors the official parser, which files flag 0 as a sell and every other flag as a buy, so
    the two never disagree on odd input. Entries with zero quantity are empty levels and are
    dropped. Packet order is kept (best first on every real capture).
    """
    v = _unpack_best_five(data)
    bids: list[DepthLevel] = []
    asks: list[DepthLevel] = []
    for i in range(0, 40, 4):
        qty = v[i + 1]
        if qty:
            level = DepthLevel(v[i + 2] / div, qty, v[i + 3])
            if v[i]:
                bids.append(level)
            else:
                asks.append(level)
    return bids, asks


# --------------------------------------------------------------------------- decoders per kind
# Each gets a message of the right length and returns a Tick, or a SkipReason when the packet
# is still unusable. Timestamps keep the spec's units per field (exchange time is epoch ms, last
# trade time epoch s → ms; both are true UTC epochs, no IST shift); 0 or negative means absent
# and becomes None, never a made-up time.


def _decode_ltp(data: Buffer, ts_recv: int) -> Tick | SkipReason:
    raw_key, ts, ltp = _unpack_ltp(data)
    instrument = _instruments_get(raw_key)
    if instrument is None:
        found = _instrument(raw_key)
        if isinstance(found, SkipReason):
            return found
        instrument = found
    token, exchange, div = instrument
    # Positional: msgspec builds a 29-field Tick from positional arguments ~7x cheaper than
    # from keywords (measured), and the import-time check above pins the field order.
    return Tick(
        SOURCE, token, exchange, _LTP_MODE, ltp / div, None,
        None, None, None, None, None, None, None, None, None, None, None,
        None, None, None, None, None, None, None,
        ts if ts > 0 else None, None, ts_recv,
    )  # fmt: skip


def _decode_quote(data: Buffer, ts_recv: int) -> Tick | SkipReason:
    (
        raw_key,
        ts,
        ltp_raw,
        ltq,
        atp,
        volume,
        tbq_f,
        tsq_f,
        open_,
        high,
        low,
        close_raw,
    ) = _unpack_quote(data)
    instrument = _instruments_get(raw_key)
    if instrument is None:
        found = _instrument(raw_key)
        if isinstance(found, SkipReason):
            return found
        instrument = found
    token, exchange, div = instrument
    ltp = ltp_raw / div
    close = close_raw / div
    change: float | None
    change_pct: float | None
    if close:  # model.price_change inlined, same expressions (see _decode_snap)
        change = ltp - close
        change_pct = change * 100.0 / close
    else:
        change = change_pct = None
    try:
        tbq: int | None = _trunc(tbq_f)
        tsq: int | None = _trunc(tsq_f)
    except (ValueError, OverflowError):
        tbq = _finite_int(tbq_f)
        tsq = _finite_int(tsq_f)
    return Tick(
        SOURCE,
        token,
        exchange,
        _QUOTE_MODE,
        ltp,
        None,
        ltq,
        atp / div,
        volume,
        tbq,
        tsq,
        open_ / div,
        high / div,
        low / div,
        close,
        change,
        change_pct,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        ts if ts > 0 else None,
        None,
        ts_recv,
    )


def _decode_snap(data: bytes, ts_recv: int) -> Tick | SkipReason:
    """SNAP_QUOTE, the hot path: every line here was measured (bench/bench_angelone_decode.py,
    CPU time and callgrind instruction counts).

    Takes ``bytes`` only: the exact-size unpack raises struct.error unless the message is 379
    bytes long, which is decode_one's length check (it maps the error to a SkipReason).
    """
    (
        raw_key,
        ts,
        ltp_raw,
        ltq,
        atp,
        volume,
        tbq_f,
        tsq_f,
        open_,
        high,
        low,
        close_raw,
        last,
        oi,
        bf0, bq0, bp0, bo0, bf1, bq1, bp1, bo1, bf2, bq2, bp2, bo2,
        bf3, bq3, bp3, bo3, bf4, bq4, bp4, bo4,
        af0, aq0, ap0, ao0, af1, aq1, ap1, ao1, af2, aq2, ap2, ao2,
        af3, aq3, ap3, ao3, af4, aq4, ap4, ao4,
        upper,
        lower,
        high52,
        low52,
    ) = _unpack_snap(data)  # fmt: skip
    instrument = _instruments_get(raw_key)
    if instrument is None:  # a memo miss: resolve once, or say why not
        found = _instrument(raw_key)
        if isinstance(found, SkipReason):
            return found
        instrument = found
    token, exchange, div = instrument
    ltp = ltp_raw / div
    close = close_raw / div
    # model.price_change inlined (a call and a tuple less), with the same expressions
    # so the floats are bit-identical; close is never NaN (an int over a divisor).
    change: float | None
    change_pct: float | None
    if close:
        change = ltp - close
        change_pct = change * 100.0 / close
    else:
        change = change_pct = None
    try:
        tbq: int | None = _trunc(tbq_f)
        tsq: int | None = _trunc(tsq_f)
    except (ValueError, OverflowError):
        tbq = _finite_int(tbq_f)
        tsq = _finite_int(tsq_f)
    if (
        bf0 and bq0 and bf1 and bq1 and bf2 and bq2 and bf3 and bq3 and bf4 and bq4
        and not af0 and aq0 and not af1 and aq1 and not af2 and aq2
        and not af3 and aq3 and not af4 and aq4
    ):  # fmt: skip
        # The layout every capture and our emulator send (§4.5): five non-empty bids (flag 1)
        # then five non-empty asks (flag 0). Built without a loop.
        bids = [
            DepthLevel(bp0 / div, bq0, bo0),
            DepthLevel(bp1 / div, bq1, bo1),
            DepthLevel(bp2 / div, bq2, bo2),
            DepthLevel(bp3 / div, bq3, bo3),
            DepthLevel(bp4 / div, bq4, bo4),
        ]
        asks = [
            DepthLevel(ap0 / div, aq0, ao0),
            DepthLevel(ap1 / div, aq1, ao1),
            DepthLevel(ap2 / div, aq2, ao2),
            DepthLevel(ap3 / div, aq3, ao3),
            DepthLevel(ap4 / div, aq4, ao4),
        ]
    else:
        bids, asks = _split_best_five(data, div)
    return Tick(
        SOURCE,
        token,
        exchange,
        _FULL_MODE,
        ltp,
        None,
        ltq,
        atp / div,
        volume,
        tbq,
        tsq,
        open_ / div,
        high / div,
        low / div,
        close,
        change,
        change_pct,
        oi,
        None,
        None,
        upper / div,
        lower / div,
        high52 / div,
        low52 / div,
        ts if ts > 0 else None,
        last * 1000 if last > 0 else None,
        ts_recv,
        bids,
        asks,
    )


_snap: Callable[[bytes, int], Tick | SkipReason] = _decode_snap
"""The SNAP_QUOTE hot path: the compiled decoder when built (marketpulse.native, about twice as
fast; it hands every packet it does not handle to :func:`_decode_snap`), else that function."""
if native.load("_angelone") is not None:
    from marketpulse.native import _angelone

    _angelone.configure(_decode_snap, _INSTRUMENTS, Tick, DepthLevel, SOURCE, _FULL_MODE)
    _snap = _angelone.snap


def _decode_snap_buffer(data: Buffer, ts_recv: int) -> Tick | SkipReason:
    """SNAP_QUOTE in anything but ``bytes`` (bytearray, memoryview, a bytes subclass).

    The exact-size unpack of :func:`_decode_snap` equals the length check only for ``bytes``,
    so other buffers, already checked to be 379 items long, are handed over as the first 379
    bytes: the very bytes an ``unpack_from`` of the buffer reads.
    """
    return _decode_snap(bytes(memoryview(data).cast("B")[:_SNAP_LENGTH]), ts_recv)


def _decode_depth(data: Buffer, ts_recv: int) -> Tick | SkipReason:
    """The deprecated 20-level packet: depth and a timestamp only, no trade prices.

    ``Tick.ltp`` is required but absent here, so it is 0.0 (never a real traded price); the
    mode is ``full`` because the tick carries depth. Timestamp A (offset 27, the JS SDK's
    ``exchange_timestamp``) is preferred, B (offset 35, what the Python SDK reports) is the
    fallback; the server writes the same value to both as far as anyone has seen.
    """
    v = _unpack_depth(data)  # raw key, timestamp A, timestamp B, then 40 × (qty, price, orders)
    instrument = _instruments_get(v[0]) or _instrument(v[0])
    if isinstance(instrument, SkipReason):
        return instrument
    token, exchange, div = instrument
    ts = v[1] if v[1] > 0 else v[2]
    bids = [DepthLevel(v[i + 1] / div, v[i], v[i + 2]) for i in range(3, 63, 3) if v[i]]
    asks = [DepthLevel(v[i + 1] / div, v[i], v[i + 2]) for i in range(63, 123, 3) if v[i]]
    return Tick(
        SOURCE, token, exchange, _FULL_MODE, 0.0, None,
        None, None, None, None, None, None, None, None, None, None, None,
        None, None, None, None, None, None, None,
        ts if ts > 0 else None, None, ts_recv, bids, asks,
    )  # fmt: skip


_Decoder: TypeAlias = Callable[[Buffer, int], "Tick | SkipReason"]

# Byte 0 → (fixed length, decoder), as a 256-slot tuple: one index, no hashing.
_KINDS: Final[tuple[tuple[int, _Decoder] | None, ...]] = tuple(
    {
        WireMode.LTP.value: (PACKET_LENGTHS[WireMode.LTP], _decode_ltp),
        WireMode.QUOTE.value: (PACKET_LENGTHS[WireMode.QUOTE], _decode_quote),
        WireMode.SNAP_QUOTE.value: (PACKET_LENGTHS[WireMode.SNAP_QUOTE], _decode_snap_buffer),
        WireMode.DEPTH.value: (PACKET_LENGTHS[WireMode.DEPTH], _decode_depth),
    }.get(mode)
    for mode in range(256)
)

# Enum attribute lookups are slow; the hot path uses these module constants.
_EMPTY: Final = SkipReason.EMPTY
_UNKNOWN_MODE: Final = SkipReason.UNKNOWN_MODE
_TRUNCATED: Final = SkipReason.TRUNCATED
_BAD_LENGTH: Final = SkipReason.BAD_LENGTH
_ERROR: Final = SkipReason.ERROR
_SNAP_LENGTH: Final = PACKET_LENGTHS[WireMode.SNAP_QUOTE]


# --------------------------------------------------------------------------- decode API


def decode_one(data: Buffer, ts_recv: int) -> Tick | SkipReason:
    """Decode one binary WebSocket message (= one packet, §4.1) into a Tick.

    The cheapest entry point: returns the :class:`SkipReason` instead of a tick for anything
    malformed and never raises, because one bad frame must not take down a feed that is
    delivering thousands of good ones. ``ts_recv`` is the caller's receive time in epoch ns.
    Only the exact length of the mode is accepted: with no length prefix on this wire, a
    longer message means the layout is not the one this decoder knows.
    """
    try:  # zero-cost in CPython 3.11 until something raises
        if data[0] == 3 and data.__class__ is bytes:  # WireMode.SNAP_QUOTE, the hot path
            return _snap(data, ts_recv)  # skips the tables and len(): about 2% of it
        kind = _KINDS[data[0]]
        if kind is not None and len(data) == kind[0]:
            return kind[1](data, ts_recv)
    except IndexError:  # data[0] of an empty message
        return _EMPTY if not data else _ERROR
    except struct.error:  # raised only by _decode_snap's exact-size unpack: not 379 bytes
        return _TRUNCATED if len(data) < _SNAP_LENGTH else _BAD_LENGTH
    except Exception:  # safety net for input no check foresaw (e.g. not bytes at all)
        return _ERROR
    if kind is None:
        return _UNKNOWN_MODE
    return _TRUNCATED if len(data) < kind[0] else _BAD_LENGTH


def decode_packets(
    messages: Iterable[Buffer], ts_recv: int, into: DecodeResult | None = None
) -> DecodeResult:
    """Decode a batch of binary messages received together; skips are counted, not raised.

    Pass ``into`` to accumulate several batches (e.g. a whole read loop) in one result.
    """
    result = DecodeResult() if into is None else into
    append = result.ticks.append
    skipped = result.skipped
    for data in messages:
        out = decode_one(data, ts_recv)
        if isinstance(out, Tick):
            append(out)
        else:
            skipped[out] = skipped.get(out, 0) + 1
    return result


def decode_packet(data: Buffer, ts_recv: int) -> DecodeResult:
    """Decode one binary message into a :class:`DecodeResult` (zero or one tick)."""
    return decode_packets((data,), ts_recv)


# --------------------------------------------------------------------------- encode (emulator)


def _exchange_type(exchange: str) -> int:
    code = EXCHANGE_TYPES.get(exchange)
    if code is None:
        known = ", ".join(EXCHANGE_TYPES)
        raise ValueError(f"exchange {exchange!r} has no Angel One exchangeType; known: {known}")
    return code


def _token_field(token: str) -> bytes:
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"token {token!r} is not ASCII") from None
    if not raw or len(raw) > 25 or b"\0" in raw:
        raise ValueError(f"token {token!r} must be 1-25 ASCII characters without NUL")
    return raw  # struct's "25s" pads with NUL


def _price(value: float | None, div: int) -> int:
    return 0 if value is None else round(value * div)


def _ts_ms(value: int | None) -> int:
    return 0 if value is None else value


def _ts_s(value: int | None) -> int:
    return 0 if value is None else value // 1000


def _levels(levels: Sequence[DepthLevel] | None, limit: int, side: str) -> Sequence[DepthLevel]:
    levels = levels or ()
    if len(levels) > limit:
        raise ValueError(f"{len(levels)} {side} levels; this packet carries at most {limit}")
    return levels


def encode_packet(
    tick: Tick, wire_mode: WireMode | int | None = None, *, sequence: int = 0
) -> bytes:
    """Build the binary packet Angel One would send for ``tick`` (the emulator's encoder).

    ``wire_mode`` defaults to the tick's mode (ltp → LTP, quote → QUOTE, full → SNAP_QUOTE);
    pass ``WireMode.DEPTH`` for the deprecated 20-level packet, or a smaller mode to serve a
    subscriber of that mode from a richer tick. Prices are multiplied by the segment divisor
    and rounded to the integer grid; absent fields are written as 0, ``ts_last_trade`` as whole
    seconds and the OI-change field as 0 (§9). ``sequence`` is the exchange sequence number,
    which Tick does not carry. Raises ValueError for ticks the wire cannot represent.
    """
    mode = WIRE_MODE_FOR.get(tick.mode) if wire_mode is None else wire_mode
    if mode is None:
        raise ValueError(f"tick mode {tick.mode!r} has no Angel One packet; pass wire_mode")
    code = _exchange_type(tick.exchange)
    div = PRICE_DIVISORS[code]
    token = _token_field(tick.token)
    try:
        if mode == WireMode.DEPTH:
            return _encode_depth(tick, code, token, div)
        head = (int(mode), code, token, sequence, _ts_ms(tick.ts_exchange), _price(tick.ltp, div))
        if mode == WireMode.LTP:
            return _LTP.pack(*head)
        quote = (
            tick.ltq or 0,
            _price(tick.atp, div),
            tick.volume or 0,
            float(tick.total_buy_qty or 0),
            float(tick.total_sell_qty or 0),
            _price(tick.open, div),
            _price(tick.high, div),
            _price(tick.low, div),
            _price(tick.close, div),
        )
        if mode == WireMode.QUOTE:
            return _QUOTE.pack(*head, *quote)
        if mode != WireMode.SNAP_QUOTE:
            raise ValueError(f"unknown wire mode {mode!r}")
        best: list[object] = []
        for flag, levels, side in ((1, tick.bids, "bid"), (0, tick.asks, "ask")):
            chosen = _levels(levels, BEST_FIVE_LEVELS, side)
            for level in chosen:
                best += (flag, level.qty, _price(level.price, div), level.orders)
            best += (flag, 0, 0, 0) * (BEST_FIVE_LEVELS - len(chosen))
        return _SNAP.pack(
            *head,
            *quote,
            _ts_s(tick.ts_last_trade),
            tick.oi or 0,
            0,
            *best,
            _price(tick.upper_circuit, div),
            _price(tick.lower_circuit, div),
            _price(tick.high_52w, div),
            _price(tick.low_52w, div),
        )
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"tick does not fit the Angel One packet: {exc}") from exc


def _encode_depth(tick: Tick, code: int, token: bytes, div: int) -> bytes:
    """The 443-byte packet; the same epoch-ms value goes into both timestamps (§4.6, §9)."""
    ts = _ts_ms(tick.ts_exchange)
    values: list[object] = [int(WireMode.DEPTH), code, token, ts, ts]
    for levels, side in ((tick.bids, "bid"), (tick.asks, "ask")):
        chosen = _levels(levels, DEPTH20_LEVELS, side)
        for level in chosen:
            values += (level.qty, _price(level.price, div), level.orders)
        values += (0, 0, 0) * (DEPTH20_LEVELS - len(chosen))
    return _DEPTH.pack(*values)


# --------------------------------------------------------------------------- text messages (§2, §3)

PING: Final = "ping"
"""The client's text heartbeat (§2); the server answers :data:`PONG`."""
PONG: Final = "pong"


class TokenGroup(msgspec.Struct, frozen=True):
    """One ``tokenList`` entry: the tokens of one exchange type."""

    exchange_type: int = msgspec.field(name="exchangeType")
    tokens: tuple[str, ...] = ()


class SubscriptionRequest(msgspec.Struct, frozen=True):
    """A client → server (un)subscribe message, flattened from its JSON shape (§2)."""

    action: int
    mode: int
    token_list: tuple[TokenGroup, ...]
    correlation_id: str | None = None


class Ping(msgspec.Struct, frozen=True):
    """The client's text ``ping``."""


class InvalidRequest(msgspec.Struct, frozen=True):
    """A client text message the server would reject (the emulator answers it with E1001)."""

    text: str
    reason: str
    correlation_id: str = ""


class Pong(msgspec.Struct, frozen=True):
    """The server's text ``pong``."""


class ErrorMessage(msgspec.Struct, frozen=True):
    """Server error JSON (§3; shape and codes unverified): E1001 bad payload, E1002 limit."""

    correlation_id: str = msgspec.field(default="", name="correlationID")
    error_code: str = msgspec.field(default="", name="errorCode")
    error_message: str = msgspec.field(default="", name="errorMessage")


class UnknownText(msgspec.Struct, frozen=True):
    """Any other text frame, kept verbatim so the client can log it."""

    text: str


class _Params(msgspec.Struct, frozen=True):
    mode: int
    token_list: tuple[TokenGroup, ...] = msgspec.field(name="tokenList")


class _Request(msgspec.Struct, frozen=True):
    action: int
    params: _Params
    correlation_id: str | None = msgspec.field(default=None, name="correlationID")


_request_decoder = msgspec.json.Decoder(_Request)
_error_decoder = msgspec.json.Decoder(ErrorMessage)


def _token_groups(
    tokens: Mapping[int, Iterable[str]] | Iterable[TokenGroup],
) -> tuple[TokenGroup, ...]:
    if isinstance(tokens, Mapping):
        return tuple(TokenGroup(int(code), tuple(group)) for code, group in tokens.items())
    return tuple(tokens)


def encode_request(request: SubscriptionRequest) -> str:
    """Serialise a request byte-for-byte as the Python SDK sends it (``json.dumps`` defaults).

    ``correlationID`` is omitted when None, like the SDK's own resubscribe messages. Validates
    what the server or the SDKs would reject, so a bad request fails here with a clear message.
    """
    if request.action not in (Action.SUBSCRIBE, Action.UNSUBSCRIBE):
        raise ValueError(f"action must be 1 (subscribe) or 0 (unsubscribe), not {request.action}")
    if request.mode not in PACKET_LENGTHS:
        raise ValueError(
            f"mode must be 1 LTP, 2 QUOTE, 3 SNAP_QUOTE or 4 DEPTH, not {request.mode}"
        )
    cid = request.correlation_id
    if cid and (len(cid) > 10 or not (cid.isascii() and cid.isalnum())):
        raise ValueError(f"correlationID {cid!r} must be at most 10 alphanumeric characters")
    groups = []
    for group in request.token_list:
        if group.exchange_type not in EXCHANGE_BY_TYPE:
            raise ValueError(f"unknown exchangeType {group.exchange_type}")
        for token in group.tokens:
            _token_field(token)
        if request.mode == WireMode.DEPTH and group.exchange_type != ExchangeType.NSE_CM:
            raise ValueError("DEPTH (mode 4) supports only exchangeType 1 (NSE_CM)")
        groups.append({"exchangeType": int(group.exchange_type), "tokens": list(group.tokens)})
    if request.mode == WireMode.DEPTH and sum(len(g.tokens) for g in request.token_list) > 50:
        raise ValueError("DEPTH (mode 4) allows at most 50 tokens")
    message: dict[str, object] = {}
    if cid is not None:
        message["correlationID"] = cid
    message["action"] = int(request.action)
    message["params"] = {"mode": int(request.mode), "tokenList": groups}
    return json.dumps(message)


def encode_subscribe(
    mode: WireMode | int,
    tokens: Mapping[int, Iterable[str]] | Iterable[TokenGroup],
    correlation_id: str | None = None,
) -> str:
    """The subscribe message; ``tokens`` maps exchangeType → token strings."""
    return encode_request(
        SubscriptionRequest(Action.SUBSCRIBE, int(mode), _token_groups(tokens), correlation_id)
    )


def encode_unsubscribe(
    mode: WireMode | int,
    tokens: Mapping[int, Iterable[str]] | Iterable[TokenGroup],
    correlation_id: str | None = None,
) -> str:
    """The unsubscribe message: same shape as subscribe with ``action`` 0."""
    return encode_request(
        SubscriptionRequest(Action.UNSUBSCRIBE, int(mode), _token_groups(tokens), correlation_id)
    )


def encode_error(error_code: str, error_message: str, correlation_id: str = "") -> str:
    """The server's error JSON (§3), for the emulator."""
    return json.dumps(
        {"correlationID": correlation_id, "errorCode": error_code, "errorMessage": error_message}
    )


def _as_text(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    return bytes(message).decode("utf-8", "replace")


def parse_client_text(message: str | bytes) -> SubscriptionRequest | Ping | InvalidRequest:
    """Parse a client → server text message (the emulator's side); never raises.

    Only the JSON shape and the action/mode values are checked: unknown exchange types are
    accepted because the real server silently ignores them (§2).
    """
    text = _as_text(message)
    if text.strip() == PING:
        return Ping()
    try:
        request = _request_decoder.decode(text)
    except (msgspec.DecodeError, UnicodeError) as exc:
        return InvalidRequest(text, f"invalid request payload: {exc}", _correlation_of(text))
    cid = request.correlation_id or ""
    if request.action not in (Action.SUBSCRIBE, Action.UNSUBSCRIBE):
        return InvalidRequest(text, f"unknown action {request.action}", cid)
    if request.params.mode not in PACKET_LENGTHS:
        return InvalidRequest(text, f"unknown mode {request.params.mode}", cid)
    return SubscriptionRequest(
        request.action, request.params.mode, request.params.token_list, request.correlation_id
    )


def _correlation_of(text: str) -> str:
    """Best-effort correlationID of a request that failed validation, to echo in the error."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return ""
    cid = raw.get("correlationID") if isinstance(raw, dict) else None
    return cid if isinstance(cid, str) else ""


def parse_server_text(message: str | bytes) -> Pong | ErrorMessage | UnknownText:
    """Parse a server → client text frame (``pong`` or error JSON); never raises.

    Anything unrecognised comes back as :class:`UnknownText` so the client can log it rather
    than fail: the error shape is unverified (§3, §10).
    """
    text = _as_text(message)
    stripped = text.strip()
    if stripped == PONG:
        return Pong()
    if stripped.startswith("{") and "errorCode" in stripped:
        try:
            return _error_decoder.decode(stripped)
        except (msgspec.DecodeError, UnicodeError):
            pass
    return UnknownText(text)

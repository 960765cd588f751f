"""DhanHQ v2 market-feed wire format: little-endian binary packets and JSON requests.

Pure functions of bytes and strings (no I/O, no logging; the decoder memoises instrument keys,
which never changes a result) shared by the feed, the emulator, the replay decoder and the
benchmark. The facts (offsets, codes, lengths) are from ``shared/protocols/dhan.md``; the
choices made where it leaves room are in ``docs/brokers/dhan-wire.md``.

Identity: a Dhan security id is only unique *within* an exchange segment (``1333`` can be HDFC
Bank on ``NSE_EQ`` and something else on ``BSE_EQ``), so marketpulse never uses a bare id. Every
instrument key is ``SEGMENT|ID`` (``NSE_EQ|1333``): the instrument master stores it as the token,
subscriptions carry it, and decoded ticks are stamped with it. Two instruments can therefore not
collide by construction.

Decoding never raises: :func:`decode_message` walks a WebSocket message packet by packet using
each header's length field (the main feed sends one packet per message today, the depth sockets
stack them) and returns what it understood plus a count and description of what it skipped.
Prev-close (6) and OI (5) packets are not ticks; they are returned separately so that the
stateful :class:`InstrumentState` can stamp ``close``/``change``/``oi`` on later ticks.
Encoding (for the emulator) is strict and raises ``ValueError``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from math import hypot
from typing import Final, Protocol

import msgspec

from marketpulse import native
from marketpulse.model import DepthLevel, Tick

SOURCE: Final = "dhan"
SEPARATOR: Final = "|"
IST_OFFSET_SECONDS: Final = 19_800
"""Dhan's LTT is IST wall-clock time encoded as if it were UTC (spec §3.10): true = LTT − 5h30."""

MAX_PER_MESSAGE: Final = 100
"""Instruments per subscribe JSON message (spec §2.1)."""

# --------------------------------------------------------------------------- segments (§4)

SEGMENT_CODES: Final[dict[str, int]] = {
    "IDX_I": 0, "NSE_EQ": 1, "NSE_FNO": 2, "NSE_CURRENCY": 3, "BSE_EQ": 4, "MCX_COMM": 5,
    "BSE_CURRENCY": 7, "BSE_FNO": 8,
}  # fmt: skip
SEGMENT_NAMES: Final[dict[int, str]] = {code: name for name, code in SEGMENT_CODES.items()}
CANONICAL_EXCHANGE: Final[dict[str, str]] = {
    "IDX_I": "NSE_INDEX", "NSE_EQ": "NSE", "NSE_FNO": "NFO", "NSE_CURRENCY": "CDS",
    "BSE_EQ": "BSE", "MCX_COMM": "MCX", "BSE_CURRENCY": "BCD", "BSE_FNO": "BFO",
}  # fmt: skip
"""Segment → canonical exchange of its ticks. ``IDX_I`` holds NSE's and BSE's indices; the
instrument master relabels BSE indices (``SENSEX``) as ``BSE_INDEX``."""
SEGMENT_FOR_EXCHANGE: Final[dict[str, str]] = {
    **{exchange: segment for segment, exchange in CANONICAL_EXCHANGE.items()},
    "BSE_INDEX": "IDX_I",
}
_DERIVATIVE_SEGMENTS: Final = frozenset({2, 3, 5, 7, 8})
_CURRENCY_SEGMENTS: Final = frozenset({3, 7})

# Per segment code (0..8): exchange label, price scale for rounding f32 to the instrument grid.
_EXCHANGE_BY_CODE: Final = tuple(
    CANONICAL_EXCHANGE.get(SEGMENT_NAMES.get(code, ""), "UNKNOWN") for code in range(256)
)
_SEGMENT_BY_CODE: Final = tuple(SEGMENT_NAMES.get(code, str(code)) for code in range(256))
_SCALE_BY_CODE: Final = tuple(
    10_000.0 if code in _CURRENCY_SEGMENTS else 100.0 for code in range(256)
)


class InstrumentKeyError(ValueError):
    """A subscription key that is not ``SEGMENT|SECURITY_ID``."""


def make_key(segment: str | int, security_id: int | str) -> str:
    """``NSE_EQ|1333`` from a segment (name or code) and a security id."""
    name = SEGMENT_NAMES[segment] if isinstance(segment, int) else segment
    return f"{name}{SEPARATOR}{security_id}"


def parse_key(key: str) -> tuple[str, int]:
    """``(segment name, security id)`` of ``NSE_EQ|1333``; also accepts a canonical exchange
    (``NSE|1333``, ``NFO|52175``) or a segment code (``1|1333``) before the separator."""
    segment, sep, ident = key.strip().partition(SEPARATOR)
    if not sep or not ident.isdigit():
        raise InstrumentKeyError(
            f"{key!r} is not a Dhan instrument key; write SEGMENT|SECURITY_ID, e.g. NSE_EQ|1333 "
            "(security ids are only unique within a segment)"
        )
    upper = segment.strip().upper()
    if upper.isdigit() and int(upper) in SEGMENT_NAMES:
        name = SEGMENT_NAMES[int(upper)]
    elif upper in SEGMENT_CODES:
        name = upper
    elif upper in SEGMENT_FOR_EXCHANGE:
        name = SEGMENT_FOR_EXCHANGE[upper]
    else:
        raise InstrumentKeyError(
            f"unknown Dhan segment {segment!r} in {key!r}; use one of {', '.join(SEGMENT_CODES)}"
        )
    security_id = int(ident)
    if security_id > 0xFFFFFFFF:
        raise InstrumentKeyError(f"security id {ident} in {key!r} does not fit 32 bits")
    return name, security_id


# --------------------------------------------------------------------------- requests (§2)

TICKER, QUOTE, FULL, DEPTH20 = 15, 17, 21, 23
DISCONNECT_REQUEST: Final = 12
SUBSCRIBE_CODE: Final[dict[str, int]] = {"ltp": TICKER, "quote": QUOTE, "full": FULL}
MODE_OF_CODE: Final[dict[int, str]] = {TICKER: "ltp", QUOTE: "quote", FULL: "full"}


class ClientRequest(msgspec.Struct, frozen=True):
    """A decoded client request (for the emulator): code and ``(segment, security id)`` list."""

    code: int
    instruments: list[tuple[str, str]] = msgspec.field(default_factory=list)


def encode_requests(
    code: int, keys: Sequence[str], per_message: int = MAX_PER_MESSAGE
) -> list[str]:
    """JSON subscribe/unsubscribe messages for ``keys``, at most ``per_message`` each."""
    out = []
    parsed = [parse_key(k) for k in keys]
    for start in range(0, len(parsed), per_message):
        chunk = parsed[start : start + per_message]
        out.append(
            json.dumps(
                {
                    "RequestCode": code,
                    "InstrumentCount": len(chunk),
                    "InstrumentList": [
                        {"ExchangeSegment": seg, "SecurityId": str(ident)} for seg, ident in chunk
                    ],
                },
                separators=(",", ":"),
            )
        )
    return out


def encode_disconnect_request() -> str:
    return json.dumps({"RequestCode": DISCONNECT_REQUEST})


def decode_client_message(text: str | bytes) -> ClientRequest:
    """Parse a client's JSON request; ``ValueError`` says what is wrong with it."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"request is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("RequestCode"), int):
        raise ValueError("request has no integer RequestCode")
    code = body["RequestCode"]
    raw = body.get("InstrumentList")
    if raw is None and "SecurityId" in body:  # the 200-level flat body
        raw = [{"ExchangeSegment": body.get("ExchangeSegment"), "SecurityId": body["SecurityId"]}]
    instruments: list[tuple[str, str]] = []
    for item in raw or []:
        if not isinstance(item, dict):
            raise ValueError(f"InstrumentList entry {item!r} is not an object")
        segment, ident = item.get("ExchangeSegment"), item.get("SecurityId")
        if not isinstance(segment, str) or not isinstance(ident, str | int):
            raise ValueError(f"InstrumentList entry {item!r} needs ExchangeSegment and SecurityId")
        instruments.append((segment, str(ident)))
    count = body.get("InstrumentCount")
    if raw is not None and "InstrumentList" in body and count != len(instruments):
        raise ValueError(f"InstrumentCount {count} does not match {len(instruments)} entries")
    return ClientRequest(code, instruments)


# --------------------------------------------------------------------------- responses (§3)

CODE_INDEX, CODE_TICKER, CODE_QUOTE, CODE_OI, CODE_PREV_CLOSE = 1, 2, 4, 5, 6
CODE_MARKET_STATUS, CODE_FULL, CODE_DISCONNECT = 7, 8, 50
DEPTH_BID, DEPTH_ASK = 41, 51

_HEADER = struct.Struct("<BHBI")
_TICKER = struct.Struct("<BHBIfi")
_PREV_CLOSE = struct.Struct("<BHBIfI")
_OI = struct.Struct("<BHBII")
_QUOTE = struct.Struct("<BHBIfHifIIIffff")
_FULL = struct.Struct("<BHBIfHifIIIIIIffff" + "IIHHff" * 5)
_DISCONNECT = struct.Struct("<BHBIh")
_DEPTH_HEADER = struct.Struct("<hBBII")
_DEPTH_ROW = struct.Struct("<dII")
_DEPTH_DISCONNECT = struct.Struct("<hBBIIh")

LENGTHS: Final[dict[int, int]] = {
    CODE_TICKER: 16, CODE_QUOTE: 50, CODE_OI: 12, CODE_PREV_CLOSE: 16, CODE_FULL: 162,
    CODE_DISCONNECT: 10,
}  # fmt: skip
if (_TICKER.size, _QUOTE.size, _OI.size, _FULL.size) != (16, 50, 12, 162):  # pragma: no cover
    raise RuntimeError("Dhan packet layouts do not match the spec's lengths")
DEPTH20_ROWS: Final = 20
DEPTH20_PACKET: Final = _DEPTH_HEADER.size + DEPTH20_ROWS * _DEPTH_ROW.size  # 332

DISCONNECT_REASONS: Final[dict[int, str]] = {
    800: "internal server error",
    804: "the number of instruments requested exceeds the limit",
    805: "too many connections: more than 5 WebSockets are open for this client id, so Dhan "
    "dropped the oldest",
    806: "the Data APIs are not subscribed for this account",
    807: "the access token has expired",
    808: "authentication failed: the client id or the access token is invalid",
    809: "the access token is invalid",
    810: "the client id is invalid",
    811: "invalid expiry date",
    812: "invalid date format",
    813: "invalid security id",
    814: "invalid request",
}
AUTH_REASONS: Final = frozenset({806, 807, 808, 809, 810})
"""Disconnect reasons that no reconnect with the same credentials/plan can fix."""


def describe_disconnect(code: int) -> str:
    return DISCONNECT_REASONS.get(code, f"unknown disconnect reason {code}")


class Decoded(msgspec.Struct, gc=False):
    """What one WebSocket message held.

    ``prev_close`` maps key → (previous close, previous OI); ``oi`` maps key → open interest;
    ``disconnect`` is the reason code of a disconnect packet; ``depth`` holds 20-level packets
    as (key, is_bid, levels); ``errors`` says why packets were skipped. Each of those is
    ``None`` when the message had none — the usual case, one tick packet per message.

    ``None`` rather than an empty container: msgspec copies an empty ``[]``/``{}`` default for
    every result, and four of them cost about 0.1 µs per message, more than a quarter of a
    compiled ticker decode. A ``msgspec.Struct`` rather than a dataclass for the same reason (a
    dataclass ``__init__`` calls ``default_factory`` functions). ``gc=False``: a result only
    holds ticks, strings and numbers, never itself, so it cannot be in a cycle.
    """

    ticks: list[Tick] = []
    prev_close: dict[str, tuple[float, int]] | None = None
    oi: dict[str, int] | None = None
    depth: list[tuple[str, bool, list[DepthLevel]]] | None = None
    disconnect: int | None = None
    market_status: int = 0
    skipped: int = 0
    errors: list[str] | None = None


def _skip(out: Decoded, why: str) -> None:
    out.skipped += 1
    if out.errors is None:
        out.errors = [why]
    elif len(out.errors) < 8:
        out.errors.append(why)


# Per-instrument facts a packet header implies, memoised because formatting the key string and
# looking up the segment's tables cost as much as decoding a ticker packet. One dict per
# segment code, keyed by security id (int hashing is trivial); bounded so that garbage input
# cannot grow it without limit.
_Instrument = tuple[str, str, float, bool]  # key, canonical exchange, price scale, derivative
_INSTRUMENTS: Final[tuple[dict[int, _Instrument], ...]] = tuple({} for _ in range(256))
_INSTRUMENT_CACHE_LIMIT: Final = 100_000
"""Entries per segment before that segment's cache is dropped (Dhan allows 5 × 5,000 ids)."""


def _instrument(seg: int, ident: int) -> _Instrument:
    """Build and remember the ``(key, exchange, scale, derivative)`` of a header (cache miss)."""
    cache = _INSTRUMENTS[seg]
    if len(cache) >= _INSTRUMENT_CACHE_LIMIT:
        cache.clear()
    entry = (f"{_SEGMENT_BY_CODE[seg]}{SEPARATOR}{ident}", _EXCHANGE_BY_CODE[seg],
             _SCALE_BY_CODE[seg], seg in _DERIVATIVE_SEGMENTS)  # fmt: skip
    cache[ident] = entry
    return entry


# Rounding a float32 price to its segment's grid. ``round(y) / s`` costs a builtin call, a
# special-method lookup and an int; ``(y + _RINT) - _RINT`` is the same round-half-even integer
# in three float operations whenever |y| < 2**51 (y + _RINT then lies in [2**52, 2**53), where
# the float spacing is exactly 1, and the subtraction is exact). The fast paths check a bound
# on the rounded values (below) and otherwise hand the packet to the general path, which uses
# ``round`` and reports NaN/inf as before. Dividing by the scale (not multiplying by its
# inverse) keeps the results identical to ``round(y) / s``.
_RINT: Final = 6755399441055744.0  # 1.5 * 2**52
_RINT_LIMIT: Final = 2.0**50
"""The fast paths accept a packet when every rounded price r has |r| < 2**50, checked at once as
``hypot(r1, r2, ...) < 2**50`` (one C call; hypot ≥ max |r|, and NaN or inf make the comparison
false, with no cancellation between values). Any |y| ≥ 2**51 gives |r| ≥ 2**51 - 4, so a packet
that passes was rounded exactly; one that fails is decoded by the general path."""

_FAST_FULL = struct.Struct("<BHBIfHifIIIIIIf4xff" + "IIHHff" * 5)  # _FULL without the day close
if _FAST_FULL.size != _FULL.size:  # pragma: no cover
    raise RuntimeError("the fast full layout drifted from the full layout")


def _decode_message(
    data: bytes, ts_recv: int | None = None, ltt_offset: int = IST_OFFSET_SECONDS
) -> Decoded:
    """Every packet of one main-feed message (never raises); the pure-Python
    :func:`decode_message`, and the reference and fallback of the compiled one.

    ``ltt_offset`` is subtracted from the wire's LTT seconds (IST-as-UTC by default; 0 if the
    server sends true epoch seconds).

    The main feed sends one packet per message, so a message that is exactly one full, quote
    or ticker packet is decoded inline (one unpack, no helper calls); anything else — stacked
    packets, side packets, malformed input, prices the fast rounding cannot take — goes through
    :func:`_decode_packets`, which the fast paths must match value for value.
    """
    n = len(data)
    if n == 162:
        (code, length, seg, ident, ltp, ltq, ltt, atp, volume, sell, buy, oi, oi_hi, oi_lo,
         open_, high, low,
         bq1, aq1, bo1, ao1, bp1, ap1, bq2, aq2, bo2, ao2, bp2, ap2,
         bq3, aq3, bo3, ao3, bp3, ap3, bq4, aq4, bo4, ao4, bp4, ap4,
         bq5, aq5, bo5, ao5, bp5, ap5) = _FAST_FULL.unpack_from(data)  # fmt: skip
        if code == CODE_FULL and length == 162:
            try:
                key, exchange, s, derivative = _INSTRUMENTS[seg][ident]
            except KeyError:
                key, exchange, s, derivative = _instrument(seg, ident)
            m = _RINT
            ltp = ltp * s + m - m
            atp = atp * s + m - m
            open_ = open_ * s + m - m
            high = high * s + m - m
            low = low * s + m - m
            bp1 = bp1 * s + m - m
            bp2 = bp2 * s + m - m
            bp3 = bp3 * s + m - m
            bp4 = bp4 * s + m - m
            bp5 = bp5 * s + m - m
            ap1 = ap1 * s + m - m
            ap2 = ap2 * s + m - m
            ap3 = ap3 * s + m - m
            ap4 = ap4 * s + m - m
            ap5 = ap5 * s + m - m
            if (hypot(ltp, atp, open_, high, low, bp1, bp2, bp3, bp4, bp5,
                      ap1, ap2, ap3, ap4, ap5) < _RINT_LIMIT):  # fmt: skip
                return Decoded([Tick(
                    SOURCE, key, exchange, "full", ltp / s, None, ltq, atp / s, volume, buy,
                    sell, open_ / s, high / s, low / s, None, None, None,
                    oi if derivative else None, oi_hi if derivative else None,
                    oi_lo if derivative else None, None, None, None, None, None,
                    (ltt - ltt_offset) * 1000 if ltt else None, ts_recv,
                    [DepthLevel(bp1 / s, bq1, bo1), DepthLevel(bp2 / s, bq2, bo2),
                     DepthLevel(bp3 / s, bq3, bo3), DepthLevel(bp4 / s, bq4, bo4),
                     DepthLevel(bp5 / s, bq5, bo5)],
                    [DepthLevel(ap1 / s, aq1, ao1), DepthLevel(ap2 / s, aq2, ao2),
                     DepthLevel(ap3 / s, aq3, ao3), DepthLevel(ap4 / s, aq4, ao4),
                     DepthLevel(ap5 / s, aq5, ao5)],
                )])  # fmt: skip
    elif n == 50:
        (code, length, seg, ident, ltp, ltq, ltt, atp, volume, sell, buy, open_, _close, high,
         low) = _QUOTE.unpack_from(data)  # fmt: skip
        if code == CODE_QUOTE and length == 50:
            try:
                key, exchange, s, _ = _INSTRUMENTS[seg][ident]
            except KeyError:
                key, exchange, s, _ = _instrument(seg, ident)
            m = _RINT
            ltp = ltp * s + m - m
            atp = atp * s + m - m
            open_ = open_ * s + m - m
            high = high * s + m - m
            low = low * s + m - m
            if hypot(ltp, atp, open_, high, low) < _RINT_LIMIT:
                return Decoded([Tick(
                    SOURCE, key, exchange, "quote", ltp / s, None, ltq, atp / s, volume, buy,
                    sell, open_ / s, high / s, low / s,
                    ts_last_trade=(ltt - ltt_offset) * 1000 if ltt else None, ts_recv=ts_recv,
                )])  # fmt: skip
    elif n == 16:
        code, length, seg, ident, ltp, ltt = _TICKER.unpack_from(data)
        if code == CODE_TICKER and length == 16:
            try:
                key, exchange, s, _ = _INSTRUMENTS[seg][ident]
            except KeyError:
                key, exchange, s, _ = _instrument(seg, ident)
            ltp = ltp * s + _RINT - _RINT
            if -_RINT_LIMIT < ltp < _RINT_LIMIT:
                return Decoded([Tick(
                    SOURCE, key, exchange, "ltp", ltp / s,
                    ts_last_trade=(ltt - ltt_offset) * 1000 if ltt else None, ts_recv=ts_recv,
                )])  # fmt: skip
    return _decode_packets(data, ts_recv, ltt_offset)


class _MessageDecoder(Protocol):
    def __call__(
        self, data: bytes, ts_recv: int | None = None, ltt_offset: int = IST_OFFSET_SECONDS
    ) -> Decoded: ...


decode_message: _MessageDecoder = _decode_message
"""Every packet of one main-feed message (never raises); see :func:`_decode_message`.

The compiled decoder when built (:mod:`marketpulse.native`; 2.5 times as fast on a message that
is one full or quote packet, the main feed's normal case, which takes the Dhan decoder past 10
times the SDK's parser), else :func:`_decode_message` itself. The compiled one hands every call
it does not decode exactly as the reference would (other packets and buffers, uncached
instruments, prices the rounding trick cannot take, odd arguments) to :func:`_decode_message`
with its arguments unchanged. ``MARKETPULSE_NATIVE=0`` forces the pure-Python decoder."""
if native.load("_dhan") is not None:
    from marketpulse.native import _dhan

    _dhan.configure(
        _decode_message, _INSTRUMENTS, Decoded, Tick, DepthLevel, SOURCE, IST_OFFSET_SECONDS
    )
    decode_message = _dhan.decode_message


def _decode_packets(data: bytes, ts_recv: int | None, ltt_offset: int) -> Decoded:
    """The general walk over a message's packets by their length fields (never raises)."""
    out = Decoded()
    n = len(data)
    pos = 0
    while pos < n:
        if n - pos < 8:
            _skip(out, f"{n - pos} trailing bytes are shorter than a header")
            break
        code, length, seg, ident = _HEADER.unpack_from(data, pos)
        if length < 8 or pos + length > n:
            _skip(out, f"packet code {code} declares length {length} at offset {pos}, "
                       f"{n - pos} bytes left")  # fmt: skip
            break
        want = LENGTHS.get(code)
        if want is not None and length != want:
            _skip(out, f"packet code {code} has length {length}, expected {want}")
            pos += length
            continue
        key, _, scale, _ = _INSTRUMENTS[seg].get(ident) or _instrument(seg, ident)
        try:
            _decode_packet(data, pos, code, seg, key, scale, ts_recv, ltt_offset, out, length)
        except (ValueError, OverflowError) as exc:  # NaN/inf prices cannot be rounded
            _skip(out, f"packet code {code} has unreadable values: {exc}")
        pos += length
    return out


def _decode_packet(
    data: bytes, pos: int, code: int, seg: int, key: str, scale: float,
    ts_recv: int | None, ltt_offset: int, out: Decoded, length: int,
) -> None:  # fmt: skip
    ticks = out.ticks
    if code == CODE_FULL:
        v = _FULL.unpack_from(data, pos)
        derivative = seg in _DERIVATIVE_SEGMENTS
        bids = [
            DepthLevel(round(v[22 + 6 * i] * scale) / scale, v[18 + 6 * i], v[20 + 6 * i])
            for i in range(5)
        ]
        asks = [
            DepthLevel(round(v[23 + 6 * i] * scale) / scale, v[19 + 6 * i], v[21 + 6 * i])
            for i in range(5)
        ]
        ltt = (v[6] - ltt_offset) * 1000 if v[6] else None
        ticks.append(
            Tick(SOURCE, key, _EXCHANGE_BY_CODE[seg], "full", round(v[4] * scale) / scale,
                 None, v[5], round(v[7] * scale) / scale, v[8], v[10], v[9],
                 round(v[14] * scale) / scale, round(v[16] * scale) / scale,
                 round(v[17] * scale) / scale, None, None, None,
                 v[11] if derivative else None, v[12] if derivative else None,
                 v[13] if derivative else None, None, None, None, None,
                 None, ltt, ts_recv, bids, asks)
        )  # fmt: skip
    elif code == CODE_TICKER:
        _, _, _, _, ltp, ltt = _TICKER.unpack_from(data, pos)
        ticks.append(
            Tick(SOURCE, key, _EXCHANGE_BY_CODE[seg], "ltp", round(ltp * scale) / scale,
                 ts_last_trade=(ltt - ltt_offset) * 1000 if ltt else None,
                 ts_recv=ts_recv)
        )  # fmt: skip
    elif code == CODE_QUOTE:
        v = _QUOTE.unpack_from(data, pos)
        ticks.append(
            Tick(SOURCE, key, _EXCHANGE_BY_CODE[seg], "quote", round(v[4] * scale) / scale,
                 None, v[5], round(v[7] * scale) / scale, v[8], v[10], v[9],
                 round(v[11] * scale) / scale, round(v[13] * scale) / scale,
                 round(v[14] * scale) / scale,
                 ts_last_trade=(v[6] - ltt_offset) * 1000 if v[6] else None,
                 ts_recv=ts_recv)
        )  # fmt: skip
    elif code == CODE_PREV_CLOSE:
        _, _, _, _, close, prev_oi = _PREV_CLOSE.unpack_from(data, pos)
        if out.prev_close is None:
            out.prev_close = {}
        out.prev_close[key] = (round(close * scale) / scale, prev_oi)
    elif code == CODE_OI:
        if out.oi is None:
            out.oi = {}
        out.oi[key] = _OI.unpack_from(data, pos)[4]
    elif code == CODE_DISCONNECT:
        out.disconnect = _DISCONNECT.unpack_from(data, pos)[4]
    elif code == CODE_MARKET_STATUS:
        out.market_status += 1
    else:
        _skip(out, f"unknown packet code {code} (length {length})")


def decode_depth_message(data: bytes) -> Decoded:
    """The stacked bid/ask packets of a 20-level (or 200-level) depth message (never raises).

    Rows with price 0 and quantity 0 are padding and dropped; bids stay best (highest) first
    and asks best (lowest) first, as the server sends them.
    """
    out = Decoded()
    n = len(data)
    pos = 0
    while pos < n:
        if n - pos < _DEPTH_HEADER.size:
            _skip(out, f"{n - pos} trailing bytes are shorter than a depth header")
            break
        length, code, seg, ident, extra = _DEPTH_HEADER.unpack_from(data, pos)
        if length < _DEPTH_HEADER.size or pos + length > n:
            _skip(out, f"depth packet code {code} declares length {length} at offset {pos}, "
                       f"{n - pos} bytes left")  # fmt: skip
            break
        if code == CODE_DISCONNECT:
            # Docs: i16 reason at 12; SDK: u32 at 8. Prefer the documented place when present.
            out.disconnect = _DEPTH_DISCONNECT.unpack_from(data, pos)[5] if length >= 14 else extra
        elif code in (DEPTH_BID, DEPTH_ASK):
            body = length - _DEPTH_HEADER.size
            if body % _DEPTH_ROW.size:
                _skip(out, f"depth packet length {length} is not a whole number of rows")
            else:
                scale = _SCALE_BY_CODE[seg]
                levels = [
                    DepthLevel(round(price * scale) / scale, qty, orders)
                    for price, qty, orders in _DEPTH_ROW.iter_unpack(
                        data[pos + _DEPTH_HEADER.size : pos + length]
                    )
                    if qty or price
                ]
                if out.depth is None:
                    out.depth = []
                out.depth.append((f"{_SEGMENT_BY_CODE[seg]}|{ident}", code == DEPTH_BID, levels))
        else:
            _skip(out, f"unknown depth packet code {code} (length {length})")
        pos += length
    return out


# --------------------------------------------------------------------------- state


class InstrumentState:
    """Per-instrument facts that arrive in their own packets, stamped on later ticks.

    The prev-close packet (sent once per subscription) gives ``close`` and so ``change`` /
    ``change_pct``; OI packets (Quote mode, derivatives) give ``oi`` to quote ticks; the
    20-level depth socket gives 20-level ``bids``/``asks`` to full ticks. Ticks are mutated in
    place (they are fresh from the decoder).
    """

    __slots__ = ("_books", "_close", "_oi", "depth_levels")

    def __init__(self, depth_levels: int = 5) -> None:
        self._close: dict[str, float] = {}
        self._oi: dict[str, int] = {}
        self._books: dict[str, tuple[list[DepthLevel] | None, list[DepthLevel] | None]] = {}
        self.depth_levels = depth_levels

    def apply(self, decoded: Decoded) -> list[Tick]:
        """Update from ``decoded``'s side packets and return its ticks, enriched."""
        if decoded.prev_close is not None:
            for key, (prev, _prev_oi) in decoded.prev_close.items():
                self._close[key] = prev
        if decoded.oi is not None:
            self._oi.update(decoded.oi)
        closes, ois = self._close, self._oi
        for tick in decoded.ticks:
            close = closes.get(tick.token)
            if close:
                tick.close = close
                change = tick.ltp - close
                tick.change = change
                tick.change_pct = change * 100.0 / close
            if tick.mode == "quote":
                oi = ois.get(tick.token)
                if oi is not None:
                    tick.oi = oi
            elif tick.mode == "full":
                if tick.oi is not None:
                    ois[tick.token] = tick.oi
                book = self._books.get(tick.token)
                if book is not None:
                    if book[0] is not None:
                        tick.bids = book[0]
                    if book[1] is not None:
                        tick.asks = book[1]
        return decoded.ticks

    def depth(self, decoded: Decoded, last: dict[str, Tick]) -> list[Tick]:
        """Remember 20-level books; a full tick re-issued with the new book per instrument
        whose last full tick is known (depth packets carry no price or time of their own)."""
        touched: dict[str, None] = {}
        for key, is_bid, levels in decoded.depth or ():
            bids, asks = self._books.get(key, (None, None))
            self._books[key] = (levels, asks) if is_bid else (bids, levels)
            touched[key] = None
        out = []
        for key in touched:
            tick = last.get(key)
            if tick is not None:
                bids, asks = self._books[key]
                out.append(
                    msgspec.structs.replace(
                        tick,
                        bids=bids if bids is not None else tick.bids,
                        asks=asks if asks is not None else tick.asks,
                    )
                )
        return out


# --------------------------------------------------------------------------- encoding


def _price(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def _wire_ltt(ts_ms: int | None, ltt_offset: int) -> int:
    return 0 if ts_ms is None else ts_ms // 1000 + ltt_offset


def encode_tick(tick: Tick, code: int | None = None, ltt_offset: int = IST_OFFSET_SECONDS) -> bytes:
    """One packet for ``tick`` (ticker, quote or full by its mode unless ``code`` says).

    ``tick.token`` must be a ``SEGMENT|ID`` key. Depth is padded with empty levels to five.
    """
    segment, ident = parse_key(tick.token)
    seg = SEGMENT_CODES[segment]
    if code is None:
        code = {"ltp": CODE_TICKER, "quote": CODE_QUOTE, "full": CODE_FULL}[tick.mode]
    ltt = _wire_ltt(tick.ts_last_trade, ltt_offset)
    try:
        if code == CODE_TICKER:
            return _TICKER.pack(code, 16, seg, ident, tick.ltp, ltt)
        common = (tick.ltp, tick.ltq or 0, ltt, _price(tick.atp), tick.volume or 0,
                  tick.total_sell_qty or 0, tick.total_buy_qty or 0)  # fmt: skip
        if code == CODE_QUOTE:
            return _QUOTE.pack(code, 50, seg, ident, *common, _price(tick.open), 0.0,
                               _price(tick.high), _price(tick.low))  # fmt: skip
        if code == CODE_FULL:
            bids = list(tick.bids or [])[:5]
            asks = list(tick.asks or [])[:5]
            empty = DepthLevel(0.0, 0, 0)
            bids += [empty] * (5 - len(bids))
            asks += [empty] * (5 - len(asks))
            depth: list[float | int] = []
            for bid, ask in zip(bids, asks, strict=True):
                depth += [bid.qty, ask.qty, bid.orders, ask.orders, bid.price, ask.price]
            return _FULL.pack(code, 162, seg, ident, *common, tick.oi or 0,
                              tick.oi_day_high or 0, tick.oi_day_low or 0, _price(tick.open), 0.0,
                              _price(tick.high), _price(tick.low), *depth)  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"tick {tick.token} cannot be encoded: {exc}") from None
    raise ValueError(f"cannot encode a tick as packet code {code}")


def encode_prev_close(key: str, close: float, prev_oi: int = 0) -> bytes:
    segment, ident = parse_key(key)
    return _PREV_CLOSE.pack(CODE_PREV_CLOSE, 16, SEGMENT_CODES[segment], ident, close, prev_oi)


def encode_oi(key: str, oi: int) -> bytes:
    segment, ident = parse_key(key)
    return _OI.pack(CODE_OI, 12, SEGMENT_CODES[segment], ident, oi)


def encode_disconnect(reason: int) -> bytes:
    return _DISCONNECT.pack(CODE_DISCONNECT, 10, 0, 0, reason)


def encode_market_status() -> bytes:
    """Code 7: the SDK reads only the header (its payload is undocumented)."""
    return _HEADER.pack(CODE_MARKET_STATUS, 8, 0, 0)


def encode_depth_side(key: str, is_bid: bool, levels: Sequence[DepthLevel],
                      rows: int = DEPTH20_ROWS, sequence: int = 0) -> bytes:  # fmt: skip
    """One 20-level depth packet (padded with empty rows to ``rows``)."""
    segment, ident = parse_key(key)
    chosen = list(levels)[:rows]
    body = b"".join(_DEPTH_ROW.pack(lv.price, lv.qty, lv.orders) for lv in chosen)
    body += bytes(_DEPTH_ROW.size * (rows - len(chosen)))
    code = DEPTH_BID if is_bid else DEPTH_ASK
    head = _DEPTH_HEADER.pack(_DEPTH_HEADER.size + len(body), code, SEGMENT_CODES[segment],
                              ident, sequence)  # fmt: skip
    return head + body


def encode_depth20(key: str, bids: Sequence[DepthLevel], asks: Sequence[DepthLevel]) -> bytes:
    """The bid packet followed by the ask packet, stacked in one message (spec §3.11)."""
    return encode_depth_side(key, True, bids) + encode_depth_side(key, False, asks)


def encode_depth_disconnect(reason: int) -> bytes:
    """14 bytes satisfying both readings: u32 reason at 8 (SDK) and i16 at 12 (docs)."""
    return _DEPTH_DISCONNECT.pack(14, CODE_DISCONNECT, 0, 0, reason, reason)


def keys_of(instruments: Iterable[tuple[str, str]]) -> list[str]:
    """Keys of a request's ``(segment, security id)`` pairs (invalid ones raise ValueError)."""
    return [make_key(*parse_key(f"{seg}|{ident}")) for seg, ident in instruments]

"""Kite Connect ticker wire format: binary market-data frames and JSON text messages.

Pure functions of bytes and strings, no I/O and no logging, so the feed's receive loop, the
emulator and the benchmarks all share one implementation and it can be tested exhaustively.
The facts (offsets, divisors, lengths) are from ``shared/protocols/kite.md``; the decisions
taken where the spec leaves room are in ``docs/brokers/kite-wire.md``.

Decoding never raises: a broker frame we cannot fully understand must not kill the session, and
one bad packet must not cost the good packets around it. :func:`decode_frame` therefore returns
a :class:`DecodeResult` with the ticks it could decode plus a count and a description of what it
had to skip. Encoding (for the emulator) is strict and raises ``ValueError`` on a tick the wire
cannot carry, because there a silent fix-up would hide a test bug.

The hot path is :func:`decode_frame`: one precompiled ``struct`` row per packet (``iter_unpack``
over runs of same-kind packets), tuple unpacking into locals, tuple look-ups for the segment's
divisor and exchange, and one positional ``Tick`` construction per packet; there are no
per-field function calls and no intermediate dicts. ``bench/bench_kite_decode.py`` measures it
against the official SDK's parser. Where ``marketpulse.native._kite`` is built, ``decode_frame``
is that compiled decoder instead, and the Python one (``_decode_frame_python``) stays the
reference it hands every unusual frame to.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeAlias

import msgspec

from marketpulse import native
from marketpulse.model import DepthLevel, Exchange, Mode, Tick

__all__ = [
    "DEPTH_LEVELS",
    "HEARTBEAT",
    "MCXSX_EXCHANGE",
    "PACKET_LENGTHS",
    "SOURCE",
    "UNKNOWN_EXCHANGE",
    "BrokerMessage",
    "ClientMessage",
    "DecodeResult",
    "ErrorMessage",
    "KiteTextMessage",
    "OrderUpdate",
    "UnknownMessage",
    "decode_client_message",
    "decode_frame",
    "decode_text",
    "divisor_for",
    "encode_frame",
    "encode_mode",
    "encode_packet",
    "encode_subscribe",
    "encode_text",
    "encode_unsubscribe",
    "exchange_for",
    "frame_packets",
    "segment_of",
]

SOURCE: Final = "kite"
HEARTBEAT: Final = b"\x00"
"""The 1-byte binary message the server sends when idle (kite.md §4.1)."""

DEPTH_LEVELS: Final = 5
"""Levels per side in a full packet; the encoder sends the best five of a deeper book."""

# --------------------------------------------------------------------------- layouts (§4)
# Prices are read as *signed* int32 (the docs say int32, negative commodity prices exist) while
# quantities, OI and timestamps are unsigned like every official SDK; see the docs page.

_LEN_LTP: Final = 8
_LEN_INDEX_QUOTE: Final = 28
_LEN_INDEX_FULL: Final = 32
_LEN_QUOTE: Final = 44
_LEN_FULL: Final = 184
PACKET_LENGTHS: Final = (_LEN_LTP, _LEN_INDEX_QUOTE, _LEN_INDEX_FULL, _LEN_QUOTE, _LEN_FULL)
_KNOWN_LENGTHS: Final = frozenset(PACKET_LENGTHS)

_U16: Final = struct.Struct(">H")
_LTP: Final = struct.Struct(">Ii")
# token, ltp, ltq, atp, volume, total buy qty, total sell qty, open, high, low, close
_QUOTE: Final = struct.Struct(">IiIiIIIiiii")
# quote + last trade time, oi, oi day high, oi day low, exchange time, 10 x (qty, price, orders)
_FULL: Final = struct.Struct(">IiIiIIIiiiiIIIII" + "IiH2x" * (2 * DEPTH_LEVELS))
# token, ltp, high, low, open, close, price change (index OHLC order differs, §4.6)
_INDEX_QUOTE: Final = struct.Struct(">Iiiiiii")
_INDEX_FULL: Final = struct.Struct(">IiiiiiiI")
_LAYOUTS: Final = (_LTP, _INDEX_QUOTE, _INDEX_FULL, _QUOTE, _FULL)
assert tuple(layout.size for layout in _LAYOUTS) == PACKET_LENGTHS


def _run(layout: struct.Struct) -> struct.Struct:
    """``layout`` preceded by its 2-byte length prefix: one row of a run of same-kind packets."""
    return struct.Struct(">H" + layout.format[1:])


_LTP_RUN: Final = _run(_LTP)
_QUOTE_RUN: Final = _run(_QUOTE)
_FULL_RUN: Final = _run(_FULL)
_INDEX_QUOTE_RUN: Final = _run(_INDEX_QUOTE)
_INDEX_FULL_RUN: Final = _run(_INDEX_FULL)

# --------------------------------------------------------------------------- segments (§4.8, §5)

_INDEX_SEGMENT: Final = 9
UNKNOWN_EXCHANGE: Final = "UNKNOWN"
"""Exchange reported for segment codes the spec does not define (0, 10, 11, > 12)."""

MCXSX_EXCHANGE: Final = "MCXSX"
"""Segment 8 (MCX-SX, now MSE) has no canonical ``Exchange`` member; reported under this code."""

_SEGMENT_EXCHANGES: Final[Mapping[int, str]] = {
    1: Exchange.NSE.value,
    2: Exchange.NFO.value,
    3: Exchange.CDS.value,
    4: Exchange.BSE.value,
    5: Exchange.BFO.value,
    6: Exchange.BCD.value,
    7: Exchange.MCX.value,
    8: MCXSX_EXCHANGE,
    9: Exchange.NSE_INDEX.value,
    12: Exchange.NCO.value,
}
_SEGMENT_DIVISORS: Final[Mapping[int, float]] = {3: 10_000_000.0, 6: 10_000.0, 12: 10_000.0}

# Indexed by ``token & 0xFF``: a tuple index is the cheapest look-up on the hot path.
_EXCHANGE: Final = tuple(_SEGMENT_EXCHANGES.get(s, UNKNOWN_EXCHANGE) for s in range(256))
_DIVISOR: Final = tuple(_SEGMENT_DIVISORS.get(s, 100.0) for s in range(256))

# The decoder builds ticks positionally: with ~25 optional fields, keyword construction costs
# about as much as all the rest of a full packet's decoding (~1.7 us against ~2 us). This guard
# turns a reordering of ``Tick``'s fields into an import error instead of shifted values.
_TICK_FIELDS: Final = (
    "source", "token", "exchange", "mode", "ltp", "symbol",
    "ltq", "atp", "volume", "total_buy_qty", "total_sell_qty",
    "open", "high", "low", "close", "change", "change_pct",
    "oi", "oi_day_high", "oi_day_low", "upper_circuit", "lower_circuit", "high_52w", "low_52w",
    "ts_exchange", "ts_last_trade", "ts_recv",
    "bids", "asks",
)  # fmt: skip
if Tick.__struct_fields__[: len(_TICK_FIELDS)] != _TICK_FIELDS:
    raise ImportError(
        "marketpulse.model.Tick fields changed order; update _TICK_FIELDS and the positional "
        "Tick(...) calls in marketpulse.feeds.kite.wire"
    )

_LTP_MODE: Final = Mode.LTP.value
_QUOTE_MODE: Final = Mode.QUOTE.value
_FULL_MODE: Final = Mode.FULL.value


def segment_of(token: int) -> int:
    """The exchange segment code: the low byte of the instrument token (§5)."""
    return token & 0xFF


def divisor_for(token: int) -> float:
    """What wire prices of ``token`` are divided by: 1e7 for CDS, 1e4 for BCD/NCO, else 100."""
    return _DIVISOR[token & 0xFF]


def exchange_for(token: int, index_exchanges: Mapping[int, str] | None = None) -> str:
    """The canonical exchange code the decoder reports for ``token``.

    Segment 9 holds every index (NSE, BSE, MCX...) and the token does not say which exchange an
    index belongs to, so indices default to ``NSE_INDEX`` unless ``index_exchanges`` (built by
    the caller from the instrument master) says otherwise.
    """
    exchange = _EXCHANGE[token & 0xFF]
    if index_exchanges and token & 0xFF == _INDEX_SEGMENT:
        return index_exchanges.get(token, exchange)
    return exchange


# --------------------------------------------------------------------------- decoding


_Scores: TypeAlias = dict[int, int | None]
"""Per-message memo for :func:`_score`: offset -> score of the framing from there (None: none)."""


_MAX_ERRORS: Final = 20
"""Problems described per message; the rest are summarised in one line (still counted)."""


class DecodeResult(msgspec.Struct, gc=False):
    """What one binary message yielded.

    ``skipped`` counts packets that were lost (unknown length, truncated, unrecoverable framing);
    ``errors`` describes every problem, including ones that lost nothing (an undefined segment
    code, a packet count that disagrees with the packets present). Both are empty for a healthy
    frame, so the caller can count and log problems without the decoder doing any I/O.
    """

    ticks: list[Tick]
    skipped: int = 0
    errors: list[str] = msgspec.field(default_factory=list)


def _decode_frame_python(
    data: bytes | bytearray | memoryview,
    ts_recv: int,
    index_exchanges: Mapping[int, str] | None = None,
) -> DecodeResult:
    """Decode one WebSocket binary message into ticks; never raises. The reference decoder.

    ``ts_recv`` (epoch ns, taken by the caller when the message arrived) is stamped on every tick.
    Messages shorter than 2 bytes are heartbeats and yield nothing. Packets are walked by their
    length prefixes up to the end of the message (the leading count is only cross-checked), so a
    wrong count loses nothing; a packet of unknown length, or whose length prefix is corrupt, is
    skipped and decoding resumes where the rest of the message frames best (:func:`_resync`).

    Packets are decoded in *runs*: when the rest of the message is a whole number of packets
    of the current packet's length (the usual case: one mode per subscription), ``iter_unpack``
    walks them without a per-packet length read or unpack call, and each row's own length
    field is still checked, so a differing packet ends the run and is dispatched normally.
    Otherwise the run is the single packet at ``pos``. Each packet kind's code appears once.
    Module globals are used directly: Python 3.11 caches their look-ups, so copying them into
    locals would only add a fixed cost to every message.
    """
    ticks: list[Tick] = []
    end = len(data)
    if end < 2:
        return DecodeResult(ticks)
    append = ticks.append
    # ``change_pct`` is ``model.price_change``'s (and the SDK's) formula, inlined because a call
    # per packet is measurable here; ``change`` is taken from the exact wire integers instead so
    # that it is the correctly rounded decimal (-49.45, not -49.45000000000073).
    change: float | None
    change_pct: float | None
    rows: Iterable[tuple[Any, ...]]
    errors: list[str] = []
    skipped = 0
    scores: _Scores | None = None  # built on the first bad packet only
    declared = 0
    try:
        (declared,) = _U16.unpack_from(data, 0)
        pos = 2
        while pos < end:
            if pos + 2 <= end:
                (length,) = _U16.unpack_from(data, pos)
                step = length + 2
                left = end - pos
                if step <= left:
                    if length == 184:
                        rows = (
                            _FULL_RUN.iter_unpack(memoryview(data)[pos:end])
                            if left > step and left % step == 0
                            else (_FULL_RUN.unpack_from(data, pos),)
                        )
                        for (
                            length, token, lp, ltq, atp, vol, tbq, tsq, op, hi, lo, cl,
                            ltt, oi, oih, oil, ets,
                            bq0, bp0, bn0, bq1, bp1, bn1, bq2, bp2, bn2,
                            bq3, bp3, bn3, bq4, bp4, bn4,
                            sq0, sp0, sn0, sq1, sp1, sn1, sq2, sp2, sn2,
                            sq3, sp3, sn3, sq4, sp4, sn4,
                        ) in rows:  # fmt: skip
                            if length != 184:
                                break
                            seg = token & 0xFF
                            div = _DIVISOR[seg]
                            exchange = _EXCHANGE[seg]
                            if seg == 9 and index_exchanges:
                                exchange = index_exchanges.get(token, exchange)
                            elif exchange is UNKNOWN_EXCHANGE:
                                errors.append(_unknown_segment(pos, token))
                            ltp = lp / div
                            close = cl / div
                            if cl:
                                change = (lp - cl) / div
                                change_pct = (ltp - close) * 100.0 / close
                            else:
                                change = change_pct = None
                            if bq0 and bq1 and bq2 and bq3 and bq4:
                                bids = [
                                    DepthLevel(bp0 / div, bq0, bn0),
                                    DepthLevel(bp1 / div, bq1, bn1),
                                    DepthLevel(bp2 / div, bq2, bn2),
                                    DepthLevel(bp3 / div, bq3, bn3),
                                    DepthLevel(bp4 / div, bq4, bn4),
                                ]
                            else:
                                bids = _levels(data, pos + 66, div)
                            if sq0 and sq1 and sq2 and sq3 and sq4:
                                asks = [
                                    DepthLevel(sp0 / div, sq0, sn0),
                                    DepthLevel(sp1 / div, sq1, sn1),
                                    DepthLevel(sp2 / div, sq2, sn2),
                                    DepthLevel(sp3 / div, sq3, sn3),
                                    DepthLevel(sp4 / div, sq4, sn4),
                                ]
                            else:
                                asks = _levels(data, pos + 126, div)
                            append(
                                Tick(  # positional: see _TICK_FIELDS
                                    SOURCE, str(token), exchange, _FULL_MODE, ltp, None,
                                    ltq, atp / div, vol, tbq, tsq,
                                    op / div, hi / div, lo / div, close, change, change_pct,
                                    oi, oih, oil, None, None, None, None,
                                    ets * 1000 if ets else None, ltt * 1000 if ltt else None,
                                    ts_recv, bids, asks,
                                )
                            )  # fmt: skip
                            pos += 186
                        continue
                    if length == 44:
                        rows = (
                            _QUOTE_RUN.iter_unpack(memoryview(data)[pos:end])
                            if left > step and left % step == 0
                            else (_QUOTE_RUN.unpack_from(data, pos),)
                        )
                        for length, token, lp, ltq, atp, vol, tbq, tsq, op, hi, lo, cl in rows:
                            if length != 44:
                                break
                            seg = token & 0xFF
                            div = _DIVISOR[seg]
                            exchange = _EXCHANGE[seg]
                            if seg == 9 and index_exchanges:
                                exchange = index_exchanges.get(token, exchange)
                            elif exchange is UNKNOWN_EXCHANGE:
                                errors.append(_unknown_segment(pos, token))
                            ltp = lp / div
                            close = cl / div
                            if cl:
                                change = (lp - cl) / div
                                change_pct = (ltp - close) * 100.0 / close
                            else:
                                change = change_pct = None
                            append(
                                Tick(  # positional: see _TICK_FIELDS
                                    SOURCE, str(token), exchange, _QUOTE_MODE, ltp, None,
                                    ltq, atp / div, vol, tbq, tsq,
                                    op / div, hi / div, lo / div, close, change, change_pct,
                                    None, None, None, None, None, None, None,
                                    None, None, ts_recv,
                                )
                            )  # fmt: skip
                            pos += 46
                        continue
                    if length == 8:
                        rows = (
                            _LTP_RUN.iter_unpack(memoryview(data)[pos:end])
                            if left > step and left % step == 0
                            else (_LTP_RUN.unpack_from(data, pos),)
                        )
                        for length, token, lp in rows:
                            if length != 8:
                                break
                            seg = token & 0xFF
                            exchange = _EXCHANGE[seg]
                            if seg == 9 and index_exchanges:
                                exchange = index_exchanges.get(token, exchange)
                            elif exchange is UNKNOWN_EXCHANGE:
                                errors.append(_unknown_segment(pos, token))
                            append(
                                Tick(SOURCE, str(token), exchange, _LTP_MODE, lp / _DIVISOR[seg],
                                     ts_recv=ts_recv)
                            )  # fmt: skip
                            pos += 10
                        continue
                    if length == 28:
                        rows = (
                            _INDEX_QUOTE_RUN.iter_unpack(memoryview(data)[pos:end])
                            if left > step and left % step == 0
                            else (_INDEX_QUOTE_RUN.unpack_from(data, pos),)
                        )
                        for length, token, lp, hi, lo, op, cl, _ in rows:
                            if length != 28:
                                break
                            seg = token & 0xFF
                            div = _DIVISOR[seg]
                            exchange = _EXCHANGE[seg]
                            if seg == 9 and index_exchanges:
                                exchange = index_exchanges.get(token, exchange)
                            elif exchange is UNKNOWN_EXCHANGE:
                                errors.append(_unknown_segment(pos, token))
                            ltp = lp / div
                            close = cl / div
                            if cl:
                                change = (lp - cl) / div
                                change_pct = (ltp - close) * 100.0 / close
                            else:
                                change = change_pct = None
                            append(
                                Tick(  # positional: see _TICK_FIELDS
                                    SOURCE, str(token), exchange, _QUOTE_MODE, ltp, None,
                                    None, None, None, None, None,
                                    op / div, hi / div, lo / div, close, change, change_pct,
                                    None, None, None, None, None, None, None,
                                    None, None, ts_recv,
                                )
                            )  # fmt: skip
                            pos += 30
                        continue
                    if length == 32:
                        rows = (
                            _INDEX_FULL_RUN.iter_unpack(memoryview(data)[pos:end])
                            if left > step and left % step == 0
                            else (_INDEX_FULL_RUN.unpack_from(data, pos),)
                        )
                        for length, token, lp, hi, lo, op, cl, _, ets in rows:
                            if length != 32:
                                break
                            seg = token & 0xFF
                            div = _DIVISOR[seg]
                            exchange = _EXCHANGE[seg]
                            if seg == 9 and index_exchanges:
                                exchange = index_exchanges.get(token, exchange)
                            elif exchange is UNKNOWN_EXCHANGE:
                                errors.append(_unknown_segment(pos, token))
                            ltp = lp / div
                            close = cl / div
                            if cl:
                                change = (lp - cl) / div
                                change_pct = (ltp - close) * 100.0 / close
                            else:
                                change = change_pct = None
                            append(
                                Tick(  # positional: see _TICK_FIELDS
                                    SOURCE, str(token), exchange, _FULL_MODE, ltp, None,
                                    None, None, None, None, None,
                                    op / div, hi / div, lo / div, close, change, change_pct,
                                    None, None, None, None, None, None, None,
                                    ets * 1000 if ets else None, None, ts_recv,
                                )
                            )  # fmt: skip
                            pos += 34
                        continue
            # The packet at ``pos`` cannot be framed as it stands (cold path).
            if scores is None:
                scores = {end: 0}
            resume, problem = _resync(data, pos, end, scores)
            skipped += 1
            if resume is None:
                errors.append(f"{problem}; the remaining {end - pos} bytes are undecodable")
                break
            errors.append(f"{problem}; skipped to offset {resume}")
            pos = resume
        packets = len(ticks) + skipped
        if packets != declared:
            errors.append(f"frame declares {declared} packets but holds {packets}")
            if declared > packets:
                # The missing packets (truncated message, unreachable after a break) are lost.
                skipped = declared - len(ticks)
        if len(errors) > _MAX_ERRORS:  # a garbage message must not become a garbage log
            errors[_MAX_ERRORS - 1 :] = [f"... and {len(errors) - _MAX_ERRORS + 1} more problems"]
    except Exception as exc:  # defensive: nothing above should raise, but never lose the ticks
        errors.append(f"decoder failure {exc!r}")
        skipped = max(skipped + 1, declared - len(ticks))
    return DecodeResult(ticks, skipped, errors)


class _FrameDecoder(Protocol):
    """The signature of :func:`decode_frame`, whichever implementation it is."""

    def __call__(
        self,
        data: bytes | bytearray | memoryview,
        ts_recv: int,
        index_exchanges: Mapping[int, str] | None = None,
    ) -> DecodeResult: ...


decode_frame: _FrameDecoder = _decode_frame_python
"""Decode one WebSocket binary message into ticks; never raises (see :func:`_decode_frame_python`).

This is the compiled decoder when it is built (``marketpulse.native._kite``): on full packets
about 2.3x the speed of the Python one, whose time goes mostly to interpreting the building of
``Tick`` and ``DepthLevel`` objects (BENCHMARKS.md). It decodes only ``bytes`` frames that are
wholly well formed (known packet lengths chaining exactly to the end, defined segments, the
declared count) with ``index_exchanges`` None or a dict, and hands every other frame, and any
call it is unsure of, to :func:`_decode_frame_python`, so its result is that function's in
every case. ``MARKETPULSE_NATIVE=0`` makes it that function.
"""
if native.load("_kite") is not None:
    from marketpulse.native import _kite

    _kite.configure(
        _decode_frame_python, globals(), Tick, DepthLevel, DecodeResult, SOURCE,
        _LTP_MODE, _QUOTE_MODE, _FULL_MODE, UNKNOWN_EXCHANGE,
    )  # fmt: skip
    decode_frame = _kite.decode_frame


_DEPTH_ENTRY: Final = struct.Struct(">IiH2x")


def _levels(data: bytes | bytearray | memoryview, offset: int, div: float) -> list[DepthLevel]:
    """One side of a partly empty book: all-zero entries are padding, not levels."""
    levels = []
    for i in range(DEPTH_LEVELS):
        qty, price, orders = _DEPTH_ENTRY.unpack_from(data, offset + 12 * i)
        if qty or price or orders:
            levels.append(DepthLevel(price / div, qty, orders))
    return levels


def _unknown_segment(offset: int, token: int) -> str:
    return (
        f"offset {offset}: token {token} has segment {token & 0xFF}, which the spec does not "
        f"define; decoded with divisor 100 and exchange {UNKNOWN_EXCHANGE}"
    )


def _resync(
    data: bytes | bytearray | memoryview, pos: int, end: int, scores: _Scores
) -> tuple[int | None, str]:
    """Where to resume after the unusable packet header at ``pos``, and what was wrong with it.

    Either the packet is well framed but of a kind we do not know (resume after its stated
    length), or its length prefix is corrupt (resume after one of the known lengths). Each
    candidate is judged by how the rest of the message frames from it (:func:`_score`): the
    length prefixes must chain exactly to the message end, and the best score wins. Ties go to
    the stated length: a live feed's framing is normally intact (an unknown kind is likelier
    than a corrupt prefix inside TLS). A known length that runs past the end is a truncated
    message, not a corrupt prefix: nothing follows it.
    """
    if pos + 2 > end:
        return None, f"offset {pos}: {end - pos} stray byte(s) where a packet length belongs"
    (length,) = _U16.unpack_from(data, pos)
    if pos + 2 + length > end:
        problem = (
            f"offset {pos}: packet of length {length} is truncated "
            f"({end - pos - 2} bytes left in the frame)"
        )
        if length in _KNOWN_LENGTHS:
            return None, problem
    else:
        problem = (
            f"offset {pos}: packet length {length} is not a Kite packet length {PACKET_LENGTHS}"
        )
    best, best_score = None, None
    for size in (length, *PACKET_LENGTHS):
        resume = pos + 2 + size
        if resume <= end:
            score = _score(data, resume, end, scores)
            if score is not None and (best_score is None or score > best_score):
                best, best_score = resume, score
    return best, problem


_TICK_WEIGHT: Final = 1 << 32
"""Weight of a (un)believable tick in :func:`_score`: above any count of short packets."""


def _score(
    data: bytes | bytearray | memoryview, start: int, end: int, scores: _Scores
) -> int | None:
    """How plausibly the message frames from ``start``: None if its length prefixes overrun.

    Following the length prefixes from ``start`` must land exactly on ``end``. Foremost, a
    packet of a known length counts +1 if its token's segment fits (a defined segment; 9 exactly
    for the index layouts) and -1 if not: the candidate that yields the most believable ticks
    wins. Second, as a tie-break, a packet shorter than the 8 bytes every Kite packet needs
    counts -1 (one of another length could be a future kind and counts 0). A walk that started
    inside a packet body reads lengths and tokens out of the fields, which in zero-rich data are
    mostly 0..3 and segment 0, so such walks lose to the true boundaries.

    Memoised per message: every offset a walk visits gets its own score and walks that merge
    stop at the first visited offset, so all the resyncs of one message together stay linear
    in its length, whatever garbage it holds.
    """
    u16 = _U16.unpack_from
    known = _KNOWN_LENGTHS
    path: list[tuple[int, int]] = []
    pos = start
    while pos not in scores:
        nxt = pos + 2 + u16(data, pos)[0] if pos + 2 <= end else end + 1
        if nxt > end:
            scores[pos] = None
            break
        length = nxt - pos - 2
        if length in known:
            segment = data[pos + 5]  # low byte of the token
            index = length in (_LEN_INDEX_QUOTE, _LEN_INDEX_FULL)
            fits = segment in _SEGMENT_EXCHANGES and (segment == _INDEX_SEGMENT or not index)
            value = _TICK_WEIGHT if fits else -_TICK_WEIGHT
        else:
            value = 0 if length >= _LEN_LTP else -1
        path.append((pos, value))
        pos = nxt
    score = scores[pos]
    for offset, value in reversed(path):
        if score is not None:
            score += value
        scores[offset] = score
    return scores[start]


# --------------------------------------------------------------------------- encoding


def encode_packet(tick: Tick) -> bytes:
    """One packet for ``tick``, laid out by its mode and its token's segment (kite.md §9.3).

    Prices are rounded to the segment's grid (1/100, 1/1e4 or 1/1e7), timestamps are truncated
    to whole seconds, fields absent from the tick are sent as 0, and a full packet carries the
    best :data:`DEPTH_LEVELS` levels per side. Raises ``ValueError`` when the tick cannot be
    represented (non-numeric token, unknown mode, value out of the wire's range).
    """
    try:
        token = int(tick.token)
        seg = token & 0xFF
        div = _DIVISOR[seg]
        ltp = _price(tick.ltp, div)
        mode = tick.mode
        if mode == _LTP_MODE:
            return _LTP.pack(token, ltp)
        if mode not in (_QUOTE_MODE, _FULL_MODE):
            raise ValueError(f"unknown mode {mode!r}; expected ltp, quote or full")
        op, hi, lo, cl = (_price(p, div) for p in (tick.open, tick.high, tick.low, tick.close))
        if seg == _INDEX_SEGMENT:
            # Bytes 24-28 carry ltp - close in wire units, as the spec's verified vector shows;
            # nobody reads the field, so a difference beyond int32 is clamped, not an error.
            change = max(-(2**31), min(2**31 - 1, ltp - cl)) if cl else 0
            if mode == _QUOTE_MODE:
                return _INDEX_QUOTE.pack(token, ltp, hi, lo, op, cl, change)
            return _INDEX_FULL.pack(token, ltp, hi, lo, op, cl, change, _seconds(tick.ts_exchange))
        head = (
            token,
            ltp,
            tick.ltq or 0,
            _price(tick.atp, div),
            tick.volume or 0,
            tick.total_buy_qty or 0,
            tick.total_sell_qty or 0,
            op,
            hi,
            lo,
            cl,
        )
        if mode == _QUOTE_MODE:
            return _QUOTE.pack(*head)
        return _FULL.pack(
            *head,
            _seconds(tick.ts_last_trade),
            tick.oi or 0,
            tick.oi_day_high or 0,
            tick.oi_day_low or 0,
            _seconds(tick.ts_exchange),
            *_depth(tick.bids, div),
            *_depth(tick.asks, div),
        )
    except (struct.error, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot encode kite tick for token {tick.token!r}: {exc}") from exc


def _price(value: float | None, div: float) -> int:
    return 0 if value is None else round(value * div)


def _seconds(epoch_ms: int | None) -> int:
    return 0 if epoch_ms is None else epoch_ms // 1000


def _depth(levels: Sequence[DepthLevel] | None, div: float) -> list[int]:
    flat: list[int] = []
    for lvl in (levels or ())[:DEPTH_LEVELS]:
        flat += (lvl.qty, round(lvl.price * div), lvl.orders)
    flat += (0, 0, 0) * (DEPTH_LEVELS - len(flat) // 3)
    return flat


def frame_packets(packets: Sequence[bytes]) -> bytes:
    """Frame already-encoded packets into one binary message (count, then length + packet)."""
    if len(packets) > 0xFFFF:
        raise ValueError(f"{len(packets)} packets do not fit one Kite message (max 65535)")
    parts = [_U16.pack(len(packets))]
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def encode_frame(ticks: Iterable[Tick]) -> bytes:
    """One binary message carrying ``ticks`` in order; the inverse of :func:`decode_frame`."""
    return frame_packets([encode_packet(t) for t in ticks])


# --------------------------------------------------------------------------- client messages


class ClientMessage(msgspec.Struct, frozen=True):
    """A client request as the emulator sees it (kite.md §2); ``mode`` only for ``mode``."""

    action: str
    tokens: list[int]
    mode: str | None = None


_MODES: Final = frozenset(m.value for m in Mode)


def _tokens(tokens: Iterable[int | str]) -> list[int]:
    return [int(t) for t in tokens]


def encode_subscribe(tokens: Iterable[int | str]) -> str:
    """``{"a": "subscribe", "v": [...]}`` with the SDK's exact spacing (tokens as integers)."""
    return json.dumps({"a": "subscribe", "v": _tokens(tokens)})


def encode_unsubscribe(tokens: Iterable[int | str]) -> str:
    """``{"a": "unsubscribe", "v": [...]}``."""
    return json.dumps({"a": "unsubscribe", "v": _tokens(tokens)})


def encode_mode(mode: Mode | str, tokens: Iterable[int | str]) -> str:
    """``{"a": "mode", "v": [mode, [...]]}``; raises ``ValueError`` on an unknown mode."""
    value = str(Mode(mode).value)
    return json.dumps({"a": "mode", "v": [value, _tokens(tokens)]})


def decode_client_message(text: str | bytes) -> ClientMessage:
    """Parse a client request (emulator side); raises ``ValueError`` saying what is wrong.

    Strict on purpose: the emulator should answer a malformed request with an ``error`` text
    message rather than guess, so the client-side bug shows up in tests.
    """
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"request is not JSON: {exc}") from None
    if not isinstance(message, dict) or "a" not in message or "v" not in message:
        raise ValueError('request must be a JSON object {"a": action, "v": value}')
    action, value = message["a"], message["v"]
    if action in ("subscribe", "unsubscribe"):
        return ClientMessage(action, _token_list(value))
    if action == "mode":
        if not isinstance(value, list) or len(value) != 2 or value[0] not in _MODES:
            raise ValueError('mode request must be {"a": "mode", "v": [ltp|quote|full, [...]]}')
        return ClientMessage(action, _token_list(value[1]), value[0])
    raise ValueError(f"unknown action {action!r}; expected subscribe, unsubscribe or mode")


def _token_list(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 0xFFFFFFFF for t in value
    ):
        raise ValueError(f"instrument tokens must be a list of uint32 integers, got {value!r}")
    return list(value)


# --------------------------------------------------------------------------- server text messages


class OrderUpdate(msgspec.Struct, frozen=True, tag_field="type", tag="order"):
    """An order postback pushed on the ticker socket (kite.md §3).

    The postback has dozens of broker-defined fields whose types Kite does not pin down, so the
    object is kept whole in ``data``; the fields every consumer needs have typed accessors.
    """

    data: dict[str, Any]

    def _text(self, key: str) -> str | None:
        value = self.data.get(key)
        return None if value is None else str(value)

    @property
    def order_id(self) -> str | None:
        return self._text("order_id")

    @property
    def status(self) -> str | None:
        return self._text("status")

    @property
    def tradingsymbol(self) -> str | None:
        return self._text("tradingsymbol")


class ErrorMessage(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    """A server-side error (the SDK reports it as ``on_error`` with code 0)."""

    data: str


class BrokerMessage(msgspec.Struct, frozen=True, tag_field="type", tag="message"):
    """A broker alert or notice for the user."""

    data: str


class UnknownMessage(msgspec.Struct, frozen=True):
    """A well-formed ``{"type", "data"}`` message of a type this codec does not know."""

    type: str
    data: Any = None


KiteTextMessage: TypeAlias = OrderUpdate | ErrorMessage | BrokerMessage | UnknownMessage


class _Envelope(msgspec.Struct):
    type: str
    data: Any = None


_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_json_encoder: Final = msgspec.json.Encoder()


def decode_text(text: str | bytes) -> KiteTextMessage | None:
    """Parse a text frame; ``None`` for anything there is nothing to deliver for. Never raises.

    Like the SDK: non-JSON text is ignored, and an ``order`` message without a non-empty object
    is dropped. Error and broker messages whose ``data`` is not a string keep its JSON text.
    """
    try:
        envelope = _envelope_decoder.decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    kind, data = envelope.type, envelope.data
    if kind == "order":
        return OrderUpdate(data) if isinstance(data, dict) and data else None
    if kind in ("error", "message"):
        if not isinstance(data, str):
            data = _json_encoder.encode(data).decode()
        return ErrorMessage(data) if kind == "error" else BrokerMessage(data)
    return UnknownMessage(kind, data)


def encode_text(message: KiteTextMessage) -> str:
    """The text frame the server sends for ``message`` (emulator side)."""
    if isinstance(message, UnknownMessage):
        return _json_encoder.encode({"type": message.type, "data": message.data}).decode()
    return _json_encoder.encode(message).decode()

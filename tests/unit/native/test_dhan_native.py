"""The compiled Dhan decoder returns exactly what the pure-Python reference returns.

``marketpulse.native._dhan.decode_message`` decodes a message that is exactly one full, quote
or ticker packet of a memoised instrument and hands every other call to
``wire._decode_message`` with its arguments unchanged. These tests compare the two on valid
packets with extreme values (every float32 class, prices at the grid's rounding boundaries and
at the rounding trick's limits, huge and negative integers), on random bytes of the hot lengths
and others, on ``bytearray``/``memoryview`` input, on cache misses then hits and on odd
arguments: by equality and by canonical JSON (which tells -0.0 from 0.0 and 1 from 1.0).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse import native
from marketpulse.feeds.dhan import wire
from marketpulse.model import DepthLevel, Tick

compiled = native.load("_dhan")
pytestmark = pytest.mark.skipif(
    compiled is None,
    reason="marketpulse.native._dhan is not in use (not built, or MARKETPULSE_NATIVE=0)",
)

TS_RECV = 1_765_791_000_125_456_789
_RINT_LIMIT = 2.0**50


def _f32(value: float) -> float:
    """``value`` as the float32 the wire carries (out-of-range values become ±inf)."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


_F32_BITS = st.integers(0, 2**32 - 1).map(lambda b: struct.unpack("<f", struct.pack("<I", b))[0])
"""Every float32 bit pattern: NaN (with payloads), ±inf, subnormals, ±0.0."""
_GRID = st.integers(-(10**8), 10**9).map(lambda units: units / 100)
_HALF_TICKS = st.integers(-(10**7), 10**7).map(lambda units: (units + 0.5) / 100)
"""Prices half-way between two grid points: round-half-even decides."""
_CURRENCY = st.integers(-(10**8), 10**8).map(lambda units: units / 10_000)
_LIMITS = st.sampled_from([2.0**50, 2.0**51, 2.0**52, 2.0**50 / 100, 2.0**51 / 100,
                           2.0**50 / 10_000, 2.0**51 / 10_000]).flatmap(
    lambda edge: st.sampled_from([edge, -edge, edge * (1 - 2**-23), edge * (1 + 2**-23),
                                  edge / 1.5, edge * 0.9])
)  # fmt: skip
"""Around 2**50 and 2**51 after scaling: where the C check and the Python hypot check part."""
_EDGES = st.sampled_from(
    [0.0, -0.0, 0.005, -0.005, 0.015, 0.025, 0.00005, 1e-45, -1e-45, 1.1754942e-38,
     3.4028235e38, -3.4028235e38, float("nan"), -float("nan"), float("inf"), -float("inf")]
)  # fmt: skip
_PRICES = st.one_of(_F32_BITS, _GRID, _HALF_TICKS, _CURRENCY, _LIMITS, _EDGES).map(_f32)
_FINITE = st.one_of(
    _GRID, _HALF_TICKS, _CURRENCY, st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 0.005, 2.0**40])
).map(_f32)
"""Prices a packet of sixteen can all have and still be decoded in C (no NaN, inf or huge)."""
_SEGMENTS = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8]), st.integers(0, 255))
_IDENTS = st.one_of(
    st.sampled_from([0, 1, 13, 255, 256, 1333, 52175, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)
_U32 = st.one_of(st.sampled_from([0, 1, 255, 256, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
_U16 = st.one_of(st.sampled_from([0, 1, 256, 2**16 - 1]), st.integers(0, 2**16 - 1))
_LTT = st.one_of(
    st.sampled_from([0, 1, -1, 19_800, 2**31 - 1, -(2**31), 1_765_811_000]),
    st.integers(-(2**31), 2**31 - 1),
)
_OFFSETS = st.one_of(
    st.sampled_from([19_800, 0, -19_800, 2**40, 2**40 + 1, -(2**40), -(2**40) - 1, 2**62,
                     2**63, -(2**63) - 1, 10**30]),
    st.integers(-(2**41), 2**41),
)  # fmt: skip
_TS_RECV = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.just(TS_RECV))


@st.composite
def full_packets(draw: st.DrawFn, price: st.SearchStrategy[float] = _PRICES) -> bytes:
    prices = [draw(price) for _ in range(6)]
    depth: list[float | int] = []
    for _ in range(5):
        depth += [draw(_U32), draw(_U32), draw(_U16), draw(_U16), draw(price), draw(price)]
    return wire._FULL.pack(
        wire.CODE_FULL, 162, draw(_SEGMENTS), draw(_IDENTS), prices[0], draw(_U16), draw(_LTT),
        prices[1], draw(_U32), draw(_U32), draw(_U32), draw(_U32), draw(_U32), draw(_U32),
        prices[2], prices[3], prices[4], prices[5], *depth,
    )  # fmt: skip


@st.composite
def quote_packets(draw: st.DrawFn, price: st.SearchStrategy[float] = _PRICES) -> bytes:
    prices = [draw(price) for _ in range(6)]
    return wire._QUOTE.pack(
        wire.CODE_QUOTE, 50, draw(_SEGMENTS), draw(_IDENTS), prices[0], draw(_U16), draw(_LTT),
        prices[1], draw(_U32), draw(_U32), draw(_U32), *prices[2:],
    )  # fmt: skip


@st.composite
def ticker_packets(draw: st.DrawFn) -> bytes:
    return wire._TICKER.pack(wire.CODE_TICKER, 16, draw(_SEGMENTS), draw(_IDENTS),
                             draw(_PRICES), draw(_LTT))  # fmt: skip


_PACKETS = st.one_of(
    full_packets(), full_packets(_FINITE), quote_packets(), quote_packets(_FINITE), ticker_packets()
)


@st.composite
def hot_headers(draw: st.DrawFn) -> bytes:
    """Random bodies behind a header the C path accepts: code and length of a hot packet."""
    code, length = draw(st.sampled_from([(8, 162), (4, 50), (2, 16)]))
    body = draw(st.binary(min_size=length - 3, max_size=length - 3))
    return struct.pack("<BH", code, length) + body


def _json(decoded: wire.Decoded) -> bytes:
    return msgspec.json.encode(decoded)


def _same(data: Any, *args: Any, **kwargs: Any) -> wire.Decoded | None:
    """Decode with the reference first (it fills the instrument cache), then with C."""
    assert compiled is not None
    failure: Exception | None = None
    try:
        expected = wire._decode_message(data, *args, **kwargs)
    except Exception as exc:  # the C path must raise the same
        failure = exc
    if failure is not None:
        with pytest.raises(type(failure)) as raised:
            compiled.decode_message(data, *args, **kwargs)
        assert str(raised.value) == str(failure)
        return None
    got = compiled.decode_message(data, *args, **kwargs)
    assert type(got) is wire.Decoded
    assert got == expected
    assert _json(got) == _json(expected)
    for tick in got.ticks:
        assert type(tick) is Tick
        assert all(type(level) is DepthLevel for level in (tick.bids or []) + (tick.asks or []))
    return got


@pytest.fixture
def fallbacks() -> Iterator[list[tuple[Any, ...]]]:
    """The calls C hands to the reference, recorded (the module is configured back after)."""
    assert compiled is not None
    calls: list[tuple[Any, ...]] = []

    def spy(*args: Any, **kwargs: Any) -> wire.Decoded:
        calls.append((*args, kwargs))
        return wire._decode_message(*args, **kwargs)

    def configure(fallback: Callable[..., Any]) -> None:
        assert compiled is not None
        compiled.configure(fallback, wire._INSTRUMENTS, wire.Decoded, Tick, DepthLevel,
                           wire.SOURCE, wire.IST_OFFSET_SECONDS)  # fmt: skip

    configure(spy)
    try:
        yield calls
    finally:
        configure(wire._decode_message)


def test_the_feed_uses_the_compiled_decoder_unless_switched_off() -> None:
    assert compiled is not None
    assert wire.decode_message is compiled.decode_message
    code = (
        "from marketpulse.feeds.dhan import wire as w; print(w.decode_message is w._decode_message)"
    )
    env = {**os.environ, "MARKETPULSE_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "True"


@given(_PACKETS, _TS_RECV, _OFFSETS)
@settings(max_examples=2000)
def test_hot_packets_with_any_values_decode_as_the_reference_does(
    data: bytes, ts_recv: int | None, offset: int
) -> None:
    _same(data, ts_recv, offset)
    _same(data, ts_recv)
    _same(data, ts_recv=ts_recv, ltt_offset=offset)
    _same(data)


_HOT_LENGTH_BYTES = st.sampled_from([16, 50, 162]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)
)


@given(st.one_of(hot_headers(), st.binary(min_size=0, max_size=400), _HOT_LENGTH_BYTES))
@settings(max_examples=1500)
def test_random_bytes_decode_as_the_reference_does(data: bytes) -> None:
    _same(data, TS_RECV)
    _same(data, None, 0)


@given(_PACKETS, st.integers(0, 161), st.integers(0, 255), st.integers(-2, 2))
@settings(max_examples=800)
def test_corrupted_and_resized_packets_decode_as_the_reference_does(
    data: bytes, where: int, value: int, resize: int
) -> None:
    corrupted = bytearray(data)
    corrupted[where % len(data)] = value
    if resize > 0:
        corrupted += bytes(resize)
    elif resize < 0:
        del corrupted[resize:]
    _same(bytes(corrupted), TS_RECV)
    _same(data + data, TS_RECV)  # stacked packets: the reference's walk


class _Bytes(bytes):
    pass


@given(_PACKETS)
@settings(max_examples=400)
def test_other_buffers_decode_as_the_reference_does(data: bytes) -> None:
    _same(bytearray(data), TS_RECV)
    _same(memoryview(data), TS_RECV)
    _same(memoryview(bytearray(data)), TS_RECV)
    _same(_Bytes(data), TS_RECV)
    _same(memoryview(data + bytes(8))[: len(data)], TS_RECV)


def test_other_buffers_and_unsure_values_go_to_the_reference(
    fallbacks: list[tuple[Any, ...]],
) -> None:
    tick = Tick(source="dhan", token="NSE_EQ|1333", exchange="NSE", mode="ltp", ltp=1642.35,
                ts_last_trade=1_765_791_000_000)  # fmt: skip
    frame = wire.encode_tick(tick)
    wire._decode_message(frame)  # memoise the instrument
    _same(bytearray(frame), 1)
    _same(frame, 2, 2**41)  # an offset too large for the exact int64 path
    _same(frame, 3, 1.5)  # a float offset: the reference computes a float
    nan = bytearray(frame)
    nan[8:12] = struct.pack("<f", float("nan"))
    _same(bytes(nan), 4)
    assert [call[1] for call in fallbacks] == [1, 2, 3, 4]
    assert not _same(frame, 5, "x")  # the reference raises TypeError, and so does C
    assert fallbacks[-1][1] == 5


def test_plain_packets_of_known_instruments_never_reach_the_reference(
    fallbacks: list[tuple[Any, ...]],
) -> None:
    rng_ticks = [
        Tick(source="dhan", token="NSE_EQ|1333", exchange="NSE", mode="ltp", ltp=1642.35,
             ts_last_trade=1_765_791_000_000),
        Tick(source="dhan", token="NSE_CURRENCY|9", exchange="CDS", mode="quote", ltp=83.2575,
             ltq=1, atp=83.25, volume=10, total_buy_qty=3, total_sell_qty=4, open=83.1,
             high=83.3, low=83.0, ts_last_trade=1_765_791_000_000),
        Tick(source="dhan", token="NSE_FNO|52175", exchange="NFO", mode="full", ltp=101.05,
             ltq=75, atp=100.5, volume=10**6, total_buy_qty=3, total_sell_qty=4, open=99.0,
             high=103.0, low=98.5, oi=12, oi_day_high=13, oi_day_low=11,
             bids=[DepthLevel(101.0 - i, 10 + i, 1 + i) for i in range(5)],
             asks=[DepthLevel(101.1 + i, 20 + i, 2 + i) for i in range(5)]),
    ]  # fmt: skip
    frames = [wire.encode_tick(tick) for tick in rng_ticks]
    for frame in frames:
        wire._decode_message(frame)  # memoise the instruments
    for frame in frames:
        _same(frame, TS_RECV)
        _same(frame, ts_recv=TS_RECV, ltt_offset=0)
    assert fallbacks == []
    got = [wire.decode_message(frame).ticks[0] for frame in frames]
    assert got == [msgspec.structs.replace(tick, ts_recv=None) for tick in rng_ticks]


@given(_PACKETS, _TS_RECV)
@settings(max_examples=500)
def test_a_cache_miss_goes_to_the_reference_then_hits_decode_alike(
    data: bytes, ts_recv: int | None
) -> None:
    assert compiled is not None
    seg, ident = data[3], int.from_bytes(data[4:8], "little")
    wire._INSTRUMENTS[seg].pop(ident, None)
    first = compiled.decode_message(data, ts_recv)  # a miss: the reference memoises it
    assert ident in wire._INSTRUMENTS[seg]
    assert wire._INSTRUMENTS[seg][ident] == wire._instrument(seg, ident)
    expected = wire._decode_message(data, ts_recv)
    assert first == expected and _json(first) == _json(expected)
    _same(data, ts_recv)  # a hit


def test_odd_arguments_behave_as_the_reference() -> None:
    assert compiled is not None
    frame = wire._TICKER.pack(wire.CODE_TICKER, 16, 1, 1333, 1642.35, 1_765_811_000)
    wire._decode_message(frame)
    _same(frame, TS_RECV, ltt_offset=0)
    _same(frame, ltt_offset=0)
    _same(frame, ltt_offset=0, ts_recv=3)
    assert compiled.decode_message(data=frame) == wire._decode_message(data=frame)
    _same(frame, 1, 2, 3)  # too many: TypeError
    _same(frame, 1, ts_recv=2)  # twice: TypeError
    _same(frame, unknown=1)  # TypeError
    _same(frame, True, True)  # a bool offset: the reference's int arithmetic
    _same(frame, "any object")  # ts_recv is passed through untouched
    _same(frame, None, 19_800.0)
    _same(wire._TICKER.pack(wire.CODE_TICKER, 16, 1, 1333, 1642.35, 0), None, "no LTT, no use")
    with pytest.raises(TypeError):
        compiled.decode_message()
    with pytest.raises(TypeError):
        wire._decode_message()  # type: ignore[call-arg]


def test_results_never_share_their_containers() -> None:
    frame = wire._FULL.pack(wire.CODE_FULL, 162, 2, 5, *([1] * 44))
    wire._decode_message(frame)
    first, second = wire.decode_message(frame), wire.decode_message(frame)
    assert first.ticks is not second.ticks
    assert first.ticks[0].bids is not second.ticks[0].bids
    # What a message did not hold is None, not a container another result could share.
    assert (first.errors, first.prev_close, first.oi, first.depth) == (None, None, None, None)


def test_rounding_limits_decode_as_the_reference_does() -> None:
    """Every rounded price just inside, at and just outside 2**50 and 2**51, each segment scale."""
    for seg in (1, 3):
        scale = wire._SCALE_BY_CODE[seg]
        for edge in (_RINT_LIMIT, 2 * _RINT_LIMIT):
            for factor in (1 - 2**-23, 1.0, 1 + 2**-23, -1.0):
                price = _f32(edge * factor / scale)
                _same(wire._TICKER.pack(wire.CODE_TICKER, 16, seg, 7, price, 1), 1)
                _same(wire._QUOTE.pack(wire.CODE_QUOTE, 50, seg, 7, 1.0, 1, 1, 1.0, 1, 1, 1,
                                       1.0, 0.0, price, 1.0), 1)  # fmt: skip
                full = [1.0] * 2 + [1.0, 0.0, 1.0, 1.0] + [price] * 10
                _same(wire._FULL.pack(wire.CODE_FULL, 162, seg, 7, full[0], 1, 1, full[1],
                                      1, 1, 1, 1, 1, 1, *full[2:6],
                                      *[v for i in range(5) for v in (1, 2, 3, 4, full[6 + 2 * i],
                                                                      full[7 + 2 * i])]),
                      1)  # fmt: skip

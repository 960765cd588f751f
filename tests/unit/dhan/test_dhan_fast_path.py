"""The single-packet fast paths of ``wire.decode_message`` against the general packet walk.

``decode_message`` decodes a message that is exactly one full, quote or ticker packet inline,
rounding float32 prices with a float trick instead of ``round`` and memoising the instrument
key. The general walk (``wire._decode_packets``) is the original algorithm and is the oracle
here: for every packet, sane or not (NaN, inf, huge, negative, subnormal prices; unknown
segments), both must give equal results, skips and error texts included.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.feeds.dhan import wire
from marketpulse.model import Tick

_F32_BITS = st.integers(0, 2**32 - 1).map(lambda b: struct.unpack("<f", struct.pack("<I", b))[0])
"""Every float32 value, NaN and inf included."""
_GRID = st.integers(-(10**7), 10**9).map(lambda units: units / 100)
_CURRENCY_GRID = st.integers(0, 10**8).map(lambda units: units / 10_000)
_EDGES = st.sampled_from(
    [0.0, -0.0, 0.005, 0.015, 2.5e-3, 0.125, 1e-45, 3.4e38, -3.4e38, 2.0**37, 2.0**43,
     2.0**44, 2.0**48, 2.0**49, 2.0**50 / 100, 2.0**51 / 100, float("nan"), float("inf"),
     float("-inf")]
)  # fmt: skip
_PRICES = st.one_of(_F32_BITS, _GRID, _CURRENCY_GRID, _EDGES)
_SEGMENTS = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8]), st.integers(0, 255))
_U32 = st.integers(0, 2**32 - 1)
_U16 = st.integers(0, 2**16 - 1)
_LTT = st.integers(-(2**31), 2**31 - 1)


def _f32(value: float) -> float:
    """``value`` as the float32 the wire carries (out-of-range values become ±inf)."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _same(data: bytes, ts_recv: int | None = 7, ltt_offset: int = wire.IST_OFFSET_SECONDS) -> None:
    fast = wire.decode_message(data, ts_recv, ltt_offset)
    general = wire._decode_packets(data, ts_recv, ltt_offset)
    assert fast == general


@st.composite
def full_packets(draw: st.DrawFn) -> bytes:
    prices = [_f32(draw(_PRICES)) for _ in range(6)]
    depth: list[float | int] = []
    for _ in range(5):
        depth += [draw(_U32), draw(_U32), draw(_U16), draw(_U16)]
        depth += [_f32(draw(_PRICES)), _f32(draw(_PRICES))]
    return wire._FULL.pack(
        wire.CODE_FULL, 162, draw(_SEGMENTS), draw(_U32), prices[0], draw(_U16), draw(_LTT),
        prices[1], draw(_U32), draw(_U32), draw(_U32), draw(_U32), draw(_U32), draw(_U32),
        prices[2], prices[3], prices[4], prices[5], *depth,
    )  # fmt: skip


@st.composite
def quote_packets(draw: st.DrawFn) -> bytes:
    prices = [_f32(draw(_PRICES)) for _ in range(6)]
    return wire._QUOTE.pack(
        wire.CODE_QUOTE, 50, draw(_SEGMENTS), draw(_U32), prices[0], draw(_U16), draw(_LTT),
        prices[1], draw(_U32), draw(_U32), draw(_U32), *prices[2:],
    )  # fmt: skip


@st.composite
def ticker_packets(draw: st.DrawFn) -> bytes:
    return wire._TICKER.pack(wire.CODE_TICKER, 16, draw(_SEGMENTS), draw(_U32),
                             _f32(draw(_PRICES)), draw(_LTT))  # fmt: skip


@given(st.one_of(full_packets(), quote_packets(), ticker_packets()), st.sampled_from([0, 19_800]))
@settings(max_examples=1500)
def test_fast_paths_equal_the_general_walk_for_any_prices(data: bytes, offset: int) -> None:
    _same(data, 1_765_791_000_125_456_789, offset)
    _same(data, None, offset)


@given(st.one_of(full_packets(), quote_packets(), ticker_packets()), st.integers(0, 161),
       st.integers(0, 255))  # fmt: skip
@settings(max_examples=500)
def test_fast_paths_equal_the_general_walk_for_corrupted_packets(
    data: bytes, where: int, value: int
) -> None:
    corrupted = bytearray(data)
    corrupted[where % len(data)] = value
    _same(bytes(corrupted))


@pytest.mark.parametrize("length", [16, 50, 162])
def test_other_packets_of_a_fast_length_take_the_general_walk(length: int) -> None:
    prev_close = wire.encode_prev_close("NSE_EQ|1333", 1630.4, 12)  # 16 bytes, code 6
    stacked = prev_close + wire.encode_oi("NSE_FNO|5", 9) * ((length - 16) // 12)
    data = (stacked + bytes(length))[:length]
    _same(data)
    assert wire.decode_message(prev_close).prev_close == {"NSE_EQ|1333": (1630.4, 12)}


def test_sane_single_packets_never_reach_the_general_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = [
        Tick(source="dhan", token="NSE_EQ|1333", exchange="NSE", mode="ltp", ltp=1642.35,
             ts_last_trade=1_765_791_000_000, ts_recv=5),
        Tick(source="dhan", token="NSE_CURRENCY|9", exchange="CDS", mode="quote", ltp=83.2575,
             ltq=1, atp=83.25, volume=10, total_buy_qty=3, total_sell_qty=4, open=83.1,
             high=83.3, low=83.0, ts_last_trade=1_765_791_000_000, ts_recv=5),
    ]  # fmt: skip
    frames = [wire.encode_tick(tick) for tick in ticks]

    def refuse(*_: object) -> wire.Decoded:
        raise AssertionError("the general walk was used for a plain single packet")

    monkeypatch.setattr(wire, "_decode_packets", refuse)
    assert [wire.decode_message(f, 5).ticks[0] for f in frames] == ticks


def test_nan_prices_are_still_skipped_with_the_rounding_error() -> None:
    full = bytearray(wire._FULL.pack(wire.CODE_FULL, 162, 2, 5, *([0] * 44)))
    full[74:78] = struct.pack("<f", float("nan"))  # first bid price
    decoded = wire.decode_message(bytes(full))
    assert decoded.ticks == [] and decoded.skipped == 1
    assert decoded.errors == ["packet code 8 has unreadable values: cannot convert float NaN "
                              "to integer"]  # fmt: skip


def test_instrument_cache_is_bounded_and_keys_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_INSTRUMENT_CACHE_LIMIT", 3)
    for seg in (1, 0, 200):
        wire._INSTRUMENTS[seg].clear()  # earlier tests filled them; they are only a memo
    for ident in range(10):
        for seg, name in ((1, "NSE_EQ"), (0, "IDX_I"), (200, "200")):
            data = wire._TICKER.pack(wire.CODE_TICKER, 16, seg, ident, 1.5, 0)
            assert wire.decode_message(data).ticks[0].token == f"{name}|{ident}"
            assert len(wire._INSTRUMENTS[seg]) <= 3


def test_results_never_share_their_containers() -> None:
    frame = wire._TICKER.pack(wire.CODE_TICKER, 16, 1, 1333, 1.5, 0)
    first, second = wire.decode_message(frame), wire.decode_message(frame)
    assert first.ticks is not second.ticks
    # What a message did not hold is None, not a container another result could share.
    assert (first.prev_close, first.oi, first.depth, first.errors) == (None, None, None, None)
    side = wire.encode_prev_close("NSE_EQ|1333", 1630.4, 12)
    one, two = wire.decode_message(side + side[:5]), wire.decode_message(side + side[:5])
    assert one.prev_close == two.prev_close and one.prev_close is not two.prev_close
    assert one.errors == two.errors and one.errors is not two.errors
    assert wire.Decoded() == wire.Decoded(ticks=[], prev_close=None, oi=None, depth=None)

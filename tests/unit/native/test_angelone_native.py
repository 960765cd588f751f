"""The compiled SNAP_QUOTE decoder returns exactly what the pure-Python reference returns.

``marketpulse.native._angelone.snap`` handles the common layout and hands everything else to
``wire._decode_snap``; these tests compare the two on valid packets with extreme values, on
layouts it must hand back, and on garbage, by equality and by canonical JSON (which tells
-0.0 from 0.0 and 1 from 1.0).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse import native
from marketpulse.feeds.angelone import wire
from marketpulse.model import Tick, encode_tick

compiled = native.load("_angelone")
pytestmark = pytest.mark.skipif(
    compiled is None, reason="marketpulse.native._angelone is not built (no C compiler?)"
)

TS_RECV = 1_705_293_930_123_000_000
_LAYOUT = struct.Struct(wire._SNAP.format)  # the full 379-byte layout, wire order
_I64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**53) - 5, 2**53 + 5),
    st.integers(-5, 10**9),
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]),
)
_F64 = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 1e300, -1e300, 2.0**63, float("nan")]),
)
_TOKEN = st.binary(min_size=0, max_size=25)


def _native_is_used() -> bool:
    return wire._snap is not wire._decode_snap


@st.composite
def snap_packets(draw: st.DrawFn, common_layout: bool = True) -> bytes:
    """A 379-byte SNAP_QUOTE with arbitrary values; by default in the layout C handles."""
    exchange = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 13, 0, 6, 255]))
    token = draw(st.one_of(st.sampled_from([b"2885", b"99926000", b"RELIANCE-EQ"]), _TOKEN))
    depth: list[Any] = []
    for i in range(10):
        flag = (draw(st.integers(1, 65535)) if i < 5 else 0) if common_layout else None
        qty = draw(st.one_of(_I64.filter(bool))) if common_layout else draw(_I64)
        if flag is None:
            flag = draw(st.integers(0, 65535))
        depth += [flag, qty, draw(_I64), draw(st.integers(0, 65535))]
    head = [
        3, exchange, token, draw(_I64), draw(_I64), draw(_I64), draw(_I64), draw(_I64),
        draw(_I64), draw(_F64), draw(_F64), draw(_I64), draw(_I64), draw(_I64), draw(_I64),
        draw(_I64), draw(_I64), draw(_I64),
    ]  # fmt: skip
    tail = [draw(_I64) for _ in range(4)]
    return _LAYOUT.pack(*head, *depth, *tail)


def _same(data: object) -> None:
    assert compiled is not None
    try:
        expected: object = wire._decode_snap(data, TS_RECV)  # type: ignore[arg-type]
    except Exception as exc:  # the C path must raise the same
        with pytest.raises(type(exc)):
            compiled.snap(data, TS_RECV)  # type: ignore[arg-type]
        return
    got = compiled.snap(data, TS_RECV)  # type: ignore[arg-type]
    assert got == expected
    if isinstance(expected, Tick):
        assert encode_tick(got) == encode_tick(expected)


def test_decode_one_uses_the_compiled_decoder_when_it_is_built() -> None:
    assert _native_is_used()


@settings(max_examples=1500)
@given(snap_packets())
def test_common_layout_packets_decode_exactly_as_the_reference(data: bytes) -> None:
    _same(data)
    _same(data)  # second time through a memoised instrument


@settings(max_examples=500)
@given(snap_packets(common_layout=False))
def test_any_depth_layout_decodes_exactly_as_the_reference(data: bytes) -> None:
    _same(data)
    _same(data)


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=450))
def test_garbage_of_any_length_behaves_as_the_reference(data: bytes) -> None:
    _same(data)
    _same(b"\x03" + data)


def test_other_buffers_go_to_the_reference() -> None:
    packet = wire.encode_packet(
        Tick(source="angelone", token="2885", exchange="NSE", mode="full", ltp=1.5), None
    )
    for data in (bytearray(packet), memoryview(packet)):
        _same(data)


def test_a_memo_miss_is_resolved_by_the_reference_then_served_compiled() -> None:
    wire._INSTRUMENTS.clear()
    tick = Tick(source="angelone", token="11536", exchange="NFO", mode="full", ltp=101.25)
    packet = wire.encode_packet(tick, None)
    first = wire.decode_one(packet, TS_RECV)
    assert b"\x02" + b"11536".ljust(25, b"\0") in wire._INSTRUMENTS
    assert wire.decode_one(packet, TS_RECV) == first


def test_a_stale_build_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "source_digest", lambda name: "0" * 64)
    assert native.load("_angelone") is None


def test_the_switch_turns_compiled_decoders_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.load("_angelone") is None

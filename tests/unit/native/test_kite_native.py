"""The compiled Kite frame decoder returns exactly what the pure-Python reference returns.

``marketpulse.native._kite.decode_frame`` decodes frames made wholly of well-formed packets of
the five known kinds and hands everything else to ``wire._decode_frame_python``; these tests
compare the two on valid frames of mixed kinds with extreme values, on malformed frames, on
other buffer types and call shapes, by equality and by canonical JSON (which tells -0.0 from
0.0 and 1 from 1.0). A counting fallback shows which path each frame took.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse import native
from marketpulse.feeds.kite import wire
from marketpulse.model import DepthLevel, Tick

compiled = native.load("_kite")
pytestmark = pytest.mark.skipif(
    compiled is None,
    reason=f"marketpulse.native._kite is not loaded ({native.ENV_SWITCH}=0)"
    if not native.enabled()
    else "marketpulse.native._kite is not built or is stale (no C compiler? run `make env`)",
)

TS_RECV = 1_705_293_930_123_456_789
DEFINED = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12]  # the segments the spec defines (wire._SEGMENT_EXCHANGES)
UNDEFINED = [0, 10, 11, 13, 200, 255]
KINDS = ["ltp", "quote", "full", "index_quote", "index_full"]
_U32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2, 999, 2**31 - 1, 2**31, 2**32 - 1]),
)
_I32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-1000, 1000),
    st.sampled_from([0, 1, -1, 5, -5, 2**31 - 1, -(2**31)]),
)
_U16 = st.one_of(st.integers(0, 0xFFFF), st.just(0))


class Counting:
    """The reference decoder, counting the frames the compiled one hands to it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> wire.DecodeResult:
        self.calls += 1
        return wire._decode_frame_python(*args, **kwargs)


def _configure(fallback: Callable[..., Any]) -> None:
    assert compiled is not None
    compiled.configure(
        fallback, vars(wire), Tick, DepthLevel, wire.DecodeResult, wire.SOURCE,
        wire._LTP_MODE, wire._QUOTE_MODE, wire._FULL_MODE, wire.UNKNOWN_EXCHANGE,
    )  # fmt: skip


@contextmanager
def counted() -> Iterator[Counting]:
    """The compiled decoder with a counting fallback (per example: hypothesis reruns bodies)."""
    counting = Counting()
    _configure(counting)
    try:
        yield counting
    finally:
        _configure(wire._decode_frame_python)  # as wire.py configured it


def _same(data: Any, index: Mapping[int, str] | None = None) -> wire.DecodeResult:
    """Both decoders on ``data``; asserts they agree and returns the result."""
    assert compiled is not None
    expected = wire._decode_frame_python(data, TS_RECV, index)
    got = compiled.decode_frame(data, TS_RECV, index)
    assert type(got) is wire.DecodeResult
    assert got == expected
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)
    return got  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- valid frames


@st.composite
def tokens(draw: st.DrawFn, segments: list[int]) -> int:
    return (draw(st.integers(0, 2**24 - 1)) << 8) | draw(st.sampled_from(segments))


@st.composite
def depth(draw: st.DrawFn) -> list[int]:
    """Five entries of one side: full, partly padded (all-zero) or partly zero fields."""
    flat: list[int] = []
    for _ in range(wire.DEPTH_LEVELS):
        shape = draw(st.sampled_from(["level", "padding", "zero qty", "zero price"]))
        qty, price, orders = draw(_U32), draw(_I32), draw(_U16)
        if shape == "padding":
            qty = price = orders = 0
        elif shape == "zero qty":
            qty = 0
        elif shape == "zero price":
            price = 0
        flat += (qty, price, orders)
    return flat


@st.composite
def packets(draw: st.DrawFn, segments: list[int] = DEFINED, kinds: list[str] = KINDS) -> bytes:
    """One packet of one of ``kinds`` with arbitrary wire values (zero close included)."""
    kind = draw(st.sampled_from(kinds))
    token = draw(tokens(segments))
    lp, cl = draw(_I32), draw(st.one_of(_I32, st.just(0)))
    if kind == "ltp":
        return wire._LTP.pack(token, lp)
    if kind.startswith("index"):
        hi, lo, op, change = (draw(_I32) for _ in range(4))
        if kind == "index_quote":
            return wire._INDEX_QUOTE.pack(token, lp, hi, lo, op, cl, change)
        return wire._INDEX_FULL.pack(token, lp, hi, lo, op, cl, change, draw(_U32))
    ltq, atp, vol, tbq, tsq = draw(_U32), draw(_I32), draw(_U32), draw(_U32), draw(_U32)
    op, hi, lo = draw(_I32), draw(_I32), draw(_I32)
    head = (token, lp, ltq, atp, vol, tbq, tsq, op, hi, lo, cl)
    if kind == "quote":
        return wire._QUOTE.pack(*head)
    tail = [draw(_U32) for _ in range(5)]  # last trade time, oi, oi high, oi low, exchange time
    return wire._FULL.pack(*head, *tail, *draw(depth()), *draw(depth()))


def _plausible_tick(draw: st.DrawFn) -> Tick:
    """A tick the encoder accepts, its prices on the segment's grid."""
    kind = draw(st.sampled_from(["ltp", "quote", "full"]))
    token = draw(tokens([s for s in DEFINED if s != 9]))
    div = wire.divisor_for(token)

    def price() -> float:
        return draw(st.integers(-(2**31), 2**31 - 1)) / div

    fields: dict[str, Any] = {"source": "kite", "token": str(token), "exchange": "x"}
    fields.update(mode=kind, ltp=price())
    if kind != "ltp":
        fields.update(ltq=draw(_U32), atp=price(), volume=draw(_U32), close=price())
        fields.update(open=price(), high=price(), low=price())
    if kind == "full":
        fields.update(oi=draw(_U32), ts_exchange=draw(_U32) * 1000)
        fields["bids"] = [DepthLevel(price(), draw(_U32), draw(_U16)) for _ in range(3)]
    return Tick(**fields)


@st.composite
def encoded_frames(draw: st.DrawFn) -> bytes:
    """A frame from the module's encoder (``encode_frame``) of plausible ticks."""
    count = draw(st.integers(1, 8))
    return wire.encode_frame([_plausible_tick(draw) for _ in range(count)])


VALID_FRAMES = st.one_of(
    st.lists(packets(), min_size=0, max_size=12).map(wire.frame_packets),
    # runs of one kind: the reference's iter_unpack path
    st.sampled_from(KINDS)
    .flatmap(lambda kind: st.lists(packets(kinds=[kind]), min_size=2, max_size=8))
    .map(wire.frame_packets),
    encoded_frames(),
)
INDEX_MAPS = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(tokens([9]), st.sampled_from(["BSE_INDEX", "MCX", "NSE_INDEX"]), max_size=4),
)


@settings(max_examples=600)
@given(VALID_FRAMES)
def test_well_formed_frames_are_decoded_in_c_exactly_as_the_reference(data: bytes) -> None:
    with counted() as fallback:
        result = _same(data)
    assert fallback.calls == 0
    assert result.skipped == 0 and result.errors == []


@settings(max_examples=200)
@given(st.lists(packets([9]), min_size=1, max_size=6), INDEX_MAPS, st.data())
def test_index_exchange_mapping(
    batch: list[bytes], index: dict[int, str] | None, data: st.DataObject
) -> None:
    if index is not None and data.draw(st.booleans()):  # map a token the frame holds
        index[struct.unpack_from(">I", batch[0])[0]] = "BSE_INDEX"
    frame = wire.frame_packets(batch)
    with counted() as fallback:
        _same(frame, index)
        assert fallback.calls == 0
        _same(frame, MappingProxyType(index or {}))  # any other Mapping: the reference's
        assert fallback.calls == 1


def test_the_public_name_is_the_compiled_decoder() -> None:
    assert compiled is not None
    assert wire.decode_frame is compiled.decode_frame
    full = wire.frame_packets([wire._FULL.pack(256 * 1000 + 2, 12345, *[0] * 44)])
    (tick,) = _same(full).ticks
    assert (tick.ltp, tick.bids, tick.asks, tick.change, tick.ts_exchange) == (
        123.45, [], [], None, None,
    )  # fmt: skip


# --------------------------------------------------------------------------- malformed frames


@settings(max_examples=400)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _same(data)
    _same(b"\x00\x01" + data)


@settings(max_examples=300)
@given(VALID_FRAMES, st.data())
def test_truncated_and_extended_frames(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    _same(data[:cut])
    _same(data + draw.draw(st.binary(min_size=1, max_size=40)))


@settings(max_examples=300)
@given(st.lists(packets(), min_size=1, max_size=8).map(wire.frame_packets), st.data())
def test_bad_lengths_and_counts(data: bytes, draw: st.DataObject) -> None:
    frame = bytearray(data)
    field = draw.draw(st.sampled_from([0, 2]))  # the packet count or the first length prefix
    frame[field : field + 2] = struct.pack(">H", draw.draw(st.integers(0, 0xFFFF)))
    with counted() as fallback:
        result = _same(bytes(frame))
    assert fallback.calls == (1 if result.errors else 0)


@settings(max_examples=200)
@given(st.lists(packets(), max_size=4), packets(UNDEFINED), st.lists(packets(), max_size=4))
def test_undefined_segments_go_to_the_reference(
    before: list[bytes], alien: bytes, after: list[bytes]
) -> None:
    with counted() as fallback:
        result = _same(wire.frame_packets([*before, alien, *after]))
    assert fallback.calls == 1
    assert any("which the spec does not define" in e for e in result.errors)


@pytest.mark.parametrize(
    "data",
    [b"", wire.HEARTBEAT, b"\x00\x00", b"\x00\x01", b"\x00\x00\x00", b"\x00\x01\x00\x08"],
)
def test_short_frames(data: bytes) -> None:
    _same(data)


def test_unknown_packet_kind_between_good_packets() -> None:
    ltp = wire._LTP.pack(256 * 408065 + 1, 250000)
    with counted() as fallback:
        _same(wire.frame_packets([ltp, b"\x07" * 12, ltp]))
    assert fallback.calls == 1


# --------------------------------------------------------------------------- inputs and calls


@settings(max_examples=150)
@given(VALID_FRAMES)
def test_bytearray_and_memoryview(data: bytes) -> None:
    expected = _same(data)
    with counted() as fallback:
        for buffer in (bytearray(data), memoryview(data), memoryview(b"xy" + data)[2:]):
            assert _same(buffer) == expected
    assert fallback.calls == 3


def test_keywords_bad_calls_and_odd_arguments_are_the_reference_s() -> None:
    assert compiled is not None
    frame = wire.frame_packets([wire._LTP.pack(256 * 264969 + 9, 2_200_000)])
    index = {256 * 264969 + 9: "BSE_INDEX"}
    expected = wire._decode_frame_python(frame, TS_RECV, index)
    assert compiled.decode_frame(frame, TS_RECV, index_exchanges=index) == expected
    assert compiled.decode_frame(data=frame, ts_recv=TS_RECV) == wire._decode_frame_python(
        frame, TS_RECV
    )
    assert compiled.decode_frame(frame, None) == wire._decode_frame_python(frame, None)
    for call in ((frame,), (frame, TS_RECV, None, None), ()):
        with pytest.raises(TypeError):
            compiled.decode_frame(*call)
    _same("text frame")  # never sent to the decoder, but it must still not raise


class _Stop(BaseException):
    pass


class _ClashingKey:
    """A key equal in hash to an index token whose comparison raises ``error``."""

    def __init__(self, token: int, error: BaseException) -> None:
        self.token, self.error = token, error

    def __hash__(self) -> int:
        return hash(self.token)

    def __eq__(self, other: object) -> bool:
        raise self.error


def test_a_failing_index_lookup_is_the_reference_s() -> None:
    """The reference contains an Exception (a "decoder failure") and lets the rest through."""
    assert compiled is not None
    token = 256 * 264969 + 9
    frame = wire.frame_packets([wire._LTP.pack(token, 2_200_000)])
    index = {_ClashingKey(token, RuntimeError("bad key")): "BSE_INDEX"}
    result = _same(frame, index)  # type: ignore[arg-type]
    assert result.errors == ["decoder failure RuntimeError('bad key')"]
    index = {_ClashingKey(token, _Stop()): "BSE_INDEX"}
    for decode in (wire._decode_frame_python, compiled.decode_frame):
        with pytest.raises(_Stop):
            decode(frame, TS_RECV, index)


def test_swapped_tables_go_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C tables are read at configure time: a different table means the reference."""
    divisors = list(wire._DIVISOR)
    divisors[1] = 1.0
    monkeypatch.setattr(wire, "_DIVISOR", tuple(divisors))
    frame = wire.frame_packets([wire._LTP.pack(256 * 408065 + 1, 250000)])
    assert compiled is not None
    assert compiled.decode_frame(frame, TS_RECV).ticks[0].ltp == 250000.0


def test_the_switch_gives_the_pure_python_decoder() -> None:
    code = "from marketpulse.feeds.kite import wire; print(wire.decode_frame.__name__)"
    env = {**os.environ, native.ENV_SWITCH: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "_decode_frame_python", out.stderr

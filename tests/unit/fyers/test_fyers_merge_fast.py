"""The byte-level merge (compiled per update layout, cached scaled Tick arguments) against the
old object-by-object decoder in :mod:`reference_hsm`: same ticks, same merged values, same
skipped counts and errors, for random sessions of snapshots, updates, lite records, mode
changes and cut-short frames."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.feeds.fyers import wire
from tests.unit.fyers import reference_hsm as ref

TOPICS = {1: "sf|nse_cm|11", 2: "sf|bse_cm|12", 3: "if|nse_cm|Nifty 50", 4: "dp|nse_cm|11",
          5: "xx|mcx_fo|13"}  # fmt: skip
LABELS = {"sf|nse_cm|11": "NSE:A-EQ", "dp|nse_cm|11": "NSE:A-EQ", "if|nse_cm|Nifty 50": "NSE:N"}
SYMBOLS = ["NSE:A-EQ", "NSE:N", "BSE:B-EQ", "MCX:C"]
# the per-tick arguments, not part of the cached state
PER_TICK = {3, 26}

raw_value = st.one_of(
    st.just(wire.NO_VALUE),
    st.integers(-5, 5),
    st.integers(0, 10**7),
    st.integers(-(2**31) + 1, -(2**31) + 2**24),  # starts with 0x80 like NO_VALUE, but is not
    st.integers(-(2**31), 2**31 - 1),
)


def _snapshot(topic_id: int, values: list[int], multiplier: int, precision: int) -> wire.Snapshot:
    return wire.Snapshot(topic_id, TOPICS[topic_id], tuple(values), multiplier, precision, "", "",
                         f"S{topic_id}")  # fmt: skip


snapshots = st.builds(
    _snapshot,
    st.sampled_from(sorted(TOPICS)),
    st.lists(raw_value, max_size=25),
    st.integers(0, 3),
    st.integers(0, 4),
)
updates = st.builds(
    lambda tid, values: wire.Update(tid, tuple(values)),
    st.integers(1, 6),  # 6: never snapshotted
    st.lists(st.one_of(st.just(wire.NO_VALUE), raw_value), max_size=25),
)
lites = st.builds(wire.Lite, st.integers(1, 6), raw_value)
frames = st.tuples(st.lists(st.one_of(snapshots, updates, updates, lites), min_size=1,
                            max_size=6), st.none() | st.integers(0, 200))  # fmt: skip
mode_changes = st.tuples(
    st.sampled_from(SYMBOLS), st.sampled_from([None, "ltp", "quote", "full", ""])
)
steps = st.lists(st.one_of(frames, mode_changes), min_size=1, max_size=25)


def scaled(topic: wire.TopicState) -> list[Any]:
    return [v for i, v in enumerate(topic.args) if i not in PER_TICK]


def rescaled(topic: wire.TopicState) -> list[Any]:
    return [v for i, v in enumerate(topic.rescaled()) if i not in PER_TICK]


def run_session(session: list[Any]) -> None:
    new = wire.HsmState(labels=dict(LABELS))
    old = ref.RefState(labels=dict(LABELS))
    for step, item in enumerate(session):
        if isinstance(item[0], str):
            symbol, mode = item
            for modes in (new.modes, old.modes):
                if mode is None:
                    modes.pop(symbol, None)
                else:
                    modes[symbol] = mode
            continue
        records, cut = item
        frame = wire.encode_data(step, records)
        if cut is not None:
            frame = frame[: max(9, len(frame) - cut)]
        out = wire.decode_frame(frame, step, new)
        ticks, skipped, errors = ref.decode(frame, step, old)
        assert out.ticks == ticks
        assert (out.skipped, out.errors) == (skipped, errors)
        assert new.lite == old.lite
        assert new.topics.keys() == old.topics.keys()
        for tid, topic in new.topics.items():
            assert topic.values == old.topics[tid].values
            assert scaled(topic) == rescaled(topic)


@settings(max_examples=400, deadline=None)
@given(steps)
def test_random_sessions_decode_exactly_as_the_reference_decoder(session: list[Any]) -> None:
    run_session(session)


def test_a_value_starting_like_no_value_is_merged_not_mistaken_for_unchanged() -> None:
    values = [wire.NO_VALUE] * 21
    values[wire.LTP] = 10_000
    snapshot = wire.Snapshot(1, TOPICS[1], tuple(values))
    tricky = [wire.NO_VALUE] * 21
    tricky[wire.CLOSE] = -(2**31) + 1  # bytes 80 00 00 01
    plain = [wire.NO_VALUE] * 21
    plain[wire.LTP] = 10_001
    run_session([([snapshot], None), ([wire.Update(1, tuple(plain))], None),
                 ([wire.Update(1, tuple(tricky))], None)])  # fmt: skip
    state = wire.HsmState(labels=dict(LABELS))
    wire.decode_frame(wire.encode_data(1, [snapshot]), 0, state)
    [tick] = wire.decode_frame(wire.encode_data(2, [wire.Update(1, tuple(tricky))]), 1, state).ticks
    assert tick.close == (-(2**31) + 1) / 100 and tick.change is not None


def test_the_bench_update_stream_matches_the_reference() -> None:
    from bench.bench_fyers_decode import frames as bench_frames

    snapshot, updates, labels = bench_frames()
    new = wire.HsmState(labels=dict(labels), modes=dict.fromkeys(labels.values(), "quote"))
    old = ref.RefState(labels=dict(labels), modes=dict.fromkeys(labels.values(), "quote"))
    for n, frame in enumerate([snapshot, *updates, *updates, updates[0]]):
        out = wire.decode_frame(frame, n, new)
        ticks, _, _ = ref.decode(frame, n, old)
        assert out.ticks == ticks and len(ticks) == 50


def test_decode_frame_reports_a_data_message_without_record_objects() -> None:
    frame = wire.encode_data(7, [wire.Lite(9, 1)])
    out = wire.decode_frame(frame + b"\x00", 0, wire.HsmState())
    assert out.message == wire.DataMessage(7, [], 0, "1 bytes after the last record")
    assert out.skipped == 1 and out.errors == ["1 bytes after the last record"]

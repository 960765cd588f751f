"""The HSM codec against the spec's verified vectors (§7), round trips, merges and fuzzing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.emulators.fyers.core import DIVISOR, TopicPublisher
from marketpulse.emulators.fyers.listing import FyersListing
from marketpulse.feeds.fyers import wire
from marketpulse.feeds.fyers.feed import ReplayDecoder
from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import DepthLevel, Mode, Tick

FRAMES = {
    name: bytes.fromhex(value)
    for name, value in json.loads(
        (Path(__file__).parents[2] / "fixtures" / "fyers" / "golden_frames.json").read_text()
    )["frames"].items()
}
SBIN, NIFTY = "NSE:SBIN-EQ", "NSE:NIFTY50-INDEX"
LABELS = {"sf|nse_cm|3045": SBIN, "if|nse_cm|Nifty 50": NIFTY, "dp|nse_cm|3045": SBIN}


def fresh_state(modes: dict[str, str] | None = None, lite: bool = False) -> wire.HsmState:
    state = wire.HsmState(labels=dict(LABELS), modes=dict(modes or {}), lite=lite)
    wire.decode_frame(FRAMES["auth_ok_ack10"], 0, state)
    return state


# --------------------------------------------------------------------------- golden vectors


def test_auth_responses_decode_to_ok_with_ack_count_or_failure() -> None:
    assert wire.decode_server_frame(FRAMES["auth_ok_ack10"]) == wire.AuthResponse(True, 10)
    assert wire.decode_server_frame(FRAMES["auth_failed"]) == wire.AuthResponse(False, 0)
    assert wire.encode_auth_response(True, 10) == FRAMES["auth_ok_ack10"]
    assert wire.encode_auth_response(False, 0) == FRAMES["auth_failed"]


def test_status_responses_decode_and_encode_byte_exact() -> None:
    assert wire.decode_server_frame(FRAMES["mode_full_ok"]) == wire.StatusResponse(wire.MODE, True)
    assert wire.decode_server_frame(FRAMES["subscribe_ok"]) == wire.StatusResponse(4, True)
    assert wire.encode_status(wire.SUBSCRIBE, True) == FRAMES["subscribe_ok"]


def test_scrip_snapshot_decodes_to_the_sdk_values_in_quote_mode() -> None:
    state = fresh_state({SBIN: "quote"})
    out = wire.decode_frame(FRAMES["snapshot_sbin"], 7, state)
    assert out.errors == [] and out.ack is None
    [tick] = out.ticks
    assert (tick.source, tick.token, tick.exchange, tick.mode) == ("fyers", SBIN, "NSE", "quote")
    assert (tick.ltp, tick.volume, tick.ltq, tick.atp) == (612.35, 8123456, 25, 611.02)
    assert (tick.ts_last_trade, tick.ts_exchange) == (1736917200000, 1736917201000)
    assert (tick.total_buy_qty, tick.total_sell_qty, tick.oi) == (512000, 498000, 0)
    assert (tick.open, tick.high, tick.low, tick.close) == (609.0, 614.75, 608.1, 608.75)
    assert (tick.high_52w, tick.low_52w) == (912.85, 600.1)
    assert (tick.lower_circuit, tick.upper_circuit) == (551.0, 673.5)
    assert round(tick.change or 0, 4) == 3.6 and round(tick.change_pct or 0, 4) == 0.5914
    assert tick.bids is None and tick.ts_recv == 7


def test_update_merges_into_the_snapshot_and_keeps_unchanged_fields() -> None:
    state = fresh_state({SBIN: "quote"})
    wire.decode_frame(FRAMES["snapshot_sbin"], 1, state)
    [tick] = wire.decode_frame(FRAMES["update_sbin"], 2, state).ticks
    assert (tick.ltp, tick.volume, tick.ltq) == (612.5, 8124000, 50)
    assert (tick.ts_last_trade, tick.ts_exchange) == (1736917203000, 1736917203000)
    assert (tick.open, tick.close, tick.atp, tick.total_buy_qty) == (609.0, 608.75, 611.02, 512000)
    assert round(tick.change or 0, 4) == 3.75 and round(tick.change_pct or 0, 4) == 0.616


def test_index_snapshot_decodes_to_an_index_tick() -> None:
    state = fresh_state()
    [tick] = wire.decode_frame(FRAMES["snapshot_nifty50"], 1, state).ticks
    assert (tick.token, tick.exchange, tick.mode) == (NIFTY, "NSE_INDEX", "quote")
    assert (tick.ltp, tick.close, tick.high, tick.low, tick.open) == (
        23456.3, 23412.1, 23510.0, 23380.0, 23420.0
    )  # fmt: skip
    assert tick.ts_exchange == 1736917201000 and round(tick.change or 0, 2) == 44.2


def test_depth_snapshot_gives_full_ticks_with_five_levels() -> None:
    state = fresh_state({SBIN: "full"})
    wire.decode_frame(FRAMES["snapshot_sbin"], 1, state)
    [tick] = wire.decode_frame(FRAMES["snapshot_depth_sbin"], 2, state).ticks
    assert tick.mode == "full" and tick.ltp == 612.35
    assert tick.bids == [DepthLevel(round(612.30 - 0.05 * i, 2), 1500 - 100 * i, 10 - i)
                         for i in range(5)]  # fmt: skip
    assert tick.asks == [DepthLevel(round(612.40 + 0.05 * i, 2), 820 + 100 * i, 6 + i)
                         for i in range(5)]  # fmt: skip


def test_lite_record_overwrites_only_the_ltp() -> None:
    state = fresh_state(lite=True)
    [snap] = wire.decode_frame(FRAMES["snapshot_sbin"], 1, state).ticks
    [lite] = wire.decode_frame(FRAMES["lite_sbin"], 2, state).ticks
    assert (snap.mode, snap.ltp) == ("ltp", 612.35)
    assert (lite.mode, lite.ltp, lite.token) == ("ltp", 612.55, SBIN)


def test_custom_message_decodes_code_text_and_reference_type() -> None:
    message = wire.decode_server_frame(FRAMES["custom_51001"])
    assert message == wire.CustomMessage(51001, "Symbol limit exceeded for your plan", 4)
    assert (
        wire.encode_custom(51001, "Symbol limit exceeded for your plan", 4)
        == FRAMES["custom_51001"]
    )


@pytest.mark.parametrize(
    "name", ["snapshot_sbin", "update_sbin", "snapshot_nifty50", "snapshot_depth_sbin", "lite_sbin"]
)
def test_data_messages_re_encode_byte_for_byte(name: str) -> None:
    message = wire.decode_server_frame(FRAMES[name])
    assert isinstance(message, wire.DataMessage) and message.error is None
    assert wire.encode_data(message.number, message.records) == FRAMES[name]


def test_our_client_frames_match_the_sdk_with_correct_length_prefixes() -> None:
    assert wire.encode_auth("offlinehsmkey0123456789", "PythonSDK-3.2.0") == FRAMES["sdk_auth"]
    assert wire.encode_ack(102) == FRAMES["ack_102"]
    assert FRAMES["ping"] == wire.PING_FRAME
    fixed = {"sdk_full_mode": (wire.encode_mode(False), b"\x00\x11"),
             "sdk_lite_mode": (wire.encode_mode(True), b"\x00\x11"),
             "sdk_subscribe": (wire.encode_subscribe(["sf|nse_cm|3045"]), b"\x00\x1a"),
             "sdk_pause_11": (wire.encode_pause(11), b"\x00\x0d"),
             "sdk_resume_11": (wire.encode_resume(11), b"\x00\x0d")}  # fmt: skip
    for name, (ours, prefix) in fixed.items():
        assert ours == prefix + FRAMES[name][2:], name


def test_client_frames_decode_whatever_their_length_prefix_says() -> None:
    auth = wire.decode_client_frame(FRAMES["sdk_auth"])
    assert (auth.kind, auth.hsm_key, auth.source) == (wire.AUTH, "offlinehsmkey0123456789",
                                                      "PythonSDK-3.2.0")  # fmt: skip
    sub = wire.decode_client_frame(FRAMES["sdk_subscribe"])  # prefix 186, actual 26
    assert (sub.kind, sub.topics, sub.channel) == (wire.SUBSCRIBE, ["sf|nse_cm|3045"], 11)
    mode = wire.decode_client_frame(FRAMES["sdk_lite_mode"])  # prefix 0
    assert (mode.channels, mode.lite) == ([11], True)
    assert wire.decode_client_frame(FRAMES["sdk_pause_11"]).channels == [11]
    assert wire.decode_client_frame(FRAMES["ack_102"]).message_number == 102
    assert wire.decode_client_frame(FRAMES["ping"]).kind == wire.PING


def test_an_acknowledgement_is_due_after_every_announced_number_of_messages() -> None:
    state = wire.HsmState(labels=dict(LABELS))
    wire.decode_frame(wire.encode_auth_response(True, 2), 0, state)
    first = wire.decode_frame(FRAMES["snapshot_sbin"], 1, state)
    second = wire.decode_frame(FRAMES["update_sbin"], 2, state)
    third = wire.decode_frame(FRAMES["snapshot_nifty50"], 3, state)
    assert (first.ack, second.ack, third.ack) == (None, 2, None)


def test_an_update_without_a_snapshot_is_skipped_and_an_unchanged_one_emits_nothing() -> None:
    state = fresh_state()
    out = wire.decode_frame(FRAMES["update_sbin"], 1, state)
    assert out.ticks == [] and out.skipped == 1
    wire.decode_frame(FRAMES["snapshot_sbin"], 1, state)
    assert len(wire.decode_frame(FRAMES["update_sbin"], 2, state).ticks) == 1
    assert wire.decode_frame(FRAMES["update_sbin"], 3, state).ticks == []  # same values again


def test_no_value_marker_in_a_snapshot_leaves_the_field_absent() -> None:
    values = [wire.NO_VALUE] * 21
    values[wire.LTP] = 10050
    frame = wire.encode_data(1, [wire.Snapshot(9, "sf|nse_cm|1", tuple(values))])
    [tick] = wire.decode_frame(frame, 0, wire.HsmState()).ticks
    assert tick.ltp == 100.5 and tick.volume is None and tick.close is None


def test_precision_and_multiplier_scale_prices() -> None:
    values = (1234567, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    snapshot = wire.Snapshot(1, "sf|cde_fo|8", values, multiplier=10, precision=4,
                             exchange="cde_fo", token="8", symbol="USDINR25DECFUT")  # fmt: skip
    [tick] = wire.decode_frame(wire.encode_data(1, [snapshot]), 0, wire.HsmState()).ticks
    assert tick.ltp == 12.34567 and tick.exchange == "CDS"
    assert tick.token == "NSE:USDINR25DECFUT"


def test_replay_decoder_labels_ticks_from_the_snapshot_strings_and_resets_per_login() -> None:
    decode = ReplayDecoder()
    assert decode(FRAMES["auth_ok_ack10"], 0) == []
    [tick] = decode(FRAMES["snapshot_sbin"], 1)
    assert (tick.token, tick.mode) == (SBIN, "quote")
    assert decode(FRAMES["auth_ok_ack10"], 2) == []
    assert decode(FRAMES["update_sbin"], 3) == []  # a new session forgot the topic ids
    assert decode("text", 4) == []


# --------------------------------------------------------------------------- round trips

i32 = st.integers(min_value=-(2**31) + 1, max_value=2**31 - 1)
short_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
snapshots = st.builds(
    wire.Snapshot, st.integers(0, 0xFFFF), short_text, st.lists(i32, max_size=40).map(tuple),
    st.integers(1, 0xFFFF), st.integers(0, 8), short_text, short_text, short_text,
)  # fmt: skip
updates = st.builds(wire.Update, st.integers(0, 0xFFFF), st.lists(i32, max_size=40).map(tuple))
lites = st.builds(wire.Lite, st.integers(0, 0xFFFF), i32)


@given(st.integers(0, 2**32 - 1), st.lists(st.one_of(snapshots, updates, lites), max_size=12))
def test_every_record_kind_round_trips(number: int, records: list[wire.Record]) -> None:
    message = wire.decode_server_frame(wire.encode_data(number, records))
    assert message == wire.DataMessage(number, records)


@given(st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                        max_size=40), max_size=50), st.integers(0, 63))  # fmt: skip
def test_subscription_requests_round_trip(topics: list[str], channel: int) -> None:
    for encode, kind in ((wire.encode_subscribe, 4), (wire.encode_unsubscribe, 5)):
        request = wire.decode_client_frame(encode(topics, channel))
        assert (request.kind, request.topics, request.channel) == (kind, topics, channel)
    assert wire.decode_client_frame(wire.encode_resume(channel)).channels == [channel]


@given(st.integers(-(2**31), 2**31 - 1), short_text, st.none() | st.integers(0, 255))
def test_custom_messages_round_trip(code: int, text: str, ref: int | None) -> None:
    assert wire.decode_server_frame(wire.encode_custom(code, text, ref)) == wire.CustomMessage(
        code, text, ref
    )


_UNIVERSE = default_universe(date(2025, 12, 1))
_LISTING = FyersListing(_UNIVERSE)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 60), st.sampled_from(["quote", "full"]))
def test_snapshot_then_random_updates_merge_to_the_state_the_emulator_holds(
    seed: int, steps: int, mode: str
) -> None:
    market = SimulatedMarket(_UNIVERSE, seed)
    picks = [_LISTING.by_symbol[s] for s in (SBIN, "NSE:INFY-EQ", NIFTY)]
    market.subscribe([p.spec.token for p in picks], Mode.FULL)
    publisher = TopicPublisher()
    state = wire.HsmState()
    labels = state.labels
    topics = []
    for item in picks:
        for topic in (item.scrip_topic, item.depth_topic if mode == "full" else None):
            if topic is not None:
                topics.append((topic, item))
                labels[topic] = item.symbol
        state.modes[item.symbol] = mode
    by_sim = {p.spec.token: p for p in picks}
    for step in range(steps):
        records: list[wire.Record] = []
        for tick in market.generate(3, 1_765_000_000_000_000_000 + step * 10**9):
            item = by_sim[tick.token]
            for topic, owner in topics:
                if owner is item:
                    record = publisher.record(topic, item, tick, lite=False)
                    if record is not None:
                        records.append(record)
        if records:
            out = wire.decode_frame(wire.encode_data(step + 1, records), step, state)
            assert out.errors == [] and out.skipped == 0
    for topic, _ in topics:
        if topic in publisher.sent:
            held = state.topics[publisher.ids[topic]]
            assert held.values == publisher.sent[topic]
            assert held.divisor == DIVISOR


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_from_the_decoder(data: bytes) -> None:
    out = wire.decode_frame(data, 0, fresh_state())
    assert isinstance(out, wire.Decoded)


@settings(max_examples=200)
@given(st.sampled_from(["snapshot_sbin", "update_sbin", "snapshot_depth_sbin", "custom_51001",
                        "snapshot_nifty50"]), st.data())  # fmt: skip
def test_truncated_or_corrupted_frames_are_reported_not_raised(
    name: str, data: st.DataObject
) -> None:
    frame = bytearray(FRAMES[name])
    cut = data.draw(st.integers(0, len(frame)))
    if data.draw(st.booleans()) and cut < len(frame):
        frame[cut] ^= data.draw(st.integers(1, 255))
    else:
        del frame[cut:]
    state = fresh_state()
    wire.decode_frame(FRAMES["snapshot_sbin"], 0, state)
    out = wire.decode_frame(bytes(frame), 1, state)
    assert isinstance(out, wire.Decoded)


def test_a_truncated_data_message_keeps_earlier_records_and_counts_the_rest() -> None:
    tick = Tick(source="fyers", token=SBIN, exchange="NSE", mode="quote", ltp=612.35, close=600.0)
    values = tuple(wire.scrip_values(tick))
    frame = wire.encode_data(1, [wire.Snapshot(1, "sf|nse_cm|3045", values, 1, 2, "nse_cm", "3045",
                                               "SBIN-EQ"), wire.Update(1, values)])  # fmt: skip
    out = wire.decode_frame(frame[:-3], 0, fresh_state())
    assert len(out.ticks) == 1 and out.skipped == 1 and "cut short" in out.errors[0]


def test_too_many_topics_in_one_frame_is_refused_and_chunks_respect_the_cap() -> None:
    topics = [f"sf|nse_cm|{n}" for n in range(3200)]
    with pytest.raises(ValueError, match="at most 1500"):
        wire.encode_subscribe(topics)
    assert [len(c) for c in wire.chunks(topics)] == [1500, 1500, 200]

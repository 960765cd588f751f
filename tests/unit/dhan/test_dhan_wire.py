"""The Dhan wire codec: the spec's worked vectors (§7), round trips of every packet kind through
the emulator's encoder and the client's decoder, and fuzzed frames that must never raise."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.feeds.base import FeedAuthError, FeedLimitError
from marketpulse.feeds.dhan import wire
from marketpulse.feeds.dhan.client import DhanDisconnectError, disconnect_error
from marketpulse.model import DepthLevel, Tick

VECTORS = {
    name: bytes.fromhex(text.replace(" ", ""))
    for name, text in json.loads(
        (Path(__file__).parents[2] / "fixtures" / "dhan" / "spec_vectors.json").read_text()
    ).items()
}
LTT_UTC_MS = (1736937000 - 19800) * 1000  # 2025-01-15 10:30 IST


def test_ticker_vector_decodes_to_the_spec_values_with_ltt_converted_to_utc() -> None:
    decoded = wire.decode_message(VECTORS["ticker_nse_eq_1333"], 7)
    assert decoded.ticks == [
        Tick(source="dhan", token="NSE_EQ|1333", exchange="NSE", mode="ltp", ltp=1642.35,
             ts_last_trade=LTT_UTC_MS, ts_recv=7)
    ]  # fmt: skip
    assert not decoded.errors


def test_ltt_offset_zero_reads_the_value_as_true_epoch_seconds() -> None:
    tick = wire.decode_message(VECTORS["ticker_nse_eq_1333"], 7, ltt_offset=0).ticks[0]
    assert tick.ts_last_trade == 1736937000 * 1000


def test_quote_vector_reads_sell_before_buy_and_ignores_the_in_session_day_close() -> None:
    tick = wire.decode_message(VECTORS["quote_nse_eq_1333"]).ticks[0]
    assert (tick.ltp, tick.ltq, tick.atp, tick.volume) == (1642.35, 25, 1640.1, 1234567)
    assert (tick.total_sell_qty, tick.total_buy_qty) == (234000, 198000)
    assert (tick.open, tick.high, tick.low, tick.close) == (1635.0, 1648.9, 1631.15, None)
    assert tick.ts_last_trade == LTT_UTC_MS


def test_full_vector_has_oi_and_five_levels_of_both_sides() -> None:
    tick = wire.decode_message(VECTORS["full_nse_fno_52175"]).ticks[0]
    assert (tick.token, tick.exchange, tick.mode) == ("NSE_FNO|52175", "NFO", "full")
    assert (tick.ltp, tick.ltq, tick.atp, tick.volume) == (250.05, 75, 248.35, 3456000)
    assert (tick.oi, tick.oi_day_high, tick.oi_day_low) == (1234500, 1300000, 1100000)
    assert (tick.open, tick.high, tick.low) == (240.0, 262.4, 236.1)
    assert tick.bids == [DepthLevel(250.0, 1500, 12), DepthLevel(249.95, 900, 7),
                         DepthLevel(249.9, 2250, 15), DepthLevel(249.85, 450, 3),
                         DepthLevel(249.8, 300, 2)]  # fmt: skip
    assert tick.asks == [DepthLevel(250.1, 1200, 9), DepthLevel(250.15, 750, 5),
                         DepthLevel(250.2, 600, 4), DepthLevel(250.25, 3000, 21),
                         DepthLevel(250.3, 825, 6)]  # fmt: skip


def test_side_packets_are_not_ticks_but_state_for_later_ticks() -> None:
    state = wire.InstrumentState()
    side = wire.decode_message(
        VECTORS["prev_close_nse_eq_1333"] + VECTORS["prev_close_nse_fno_52175"]
        + VECTORS["oi_nse_fno_52175"]
    )  # fmt: skip
    assert side.ticks == [] and side.oi == {"NSE_FNO|52175": 1234500}
    assert side.prev_close == {"NSE_EQ|1333": (1630.4, 0), "NSE_FNO|52175": (245.5, 1100000)}
    assert state.apply(side) == []
    tick = state.apply(wire.decode_message(VECTORS["ticker_nse_eq_1333"]))[0]
    assert tick.close == 1630.4
    assert tick.change == pytest.approx(11.95) and tick.change_pct == pytest.approx(0.73295, 1e-4)


def test_disconnect_vector_carries_reason_807() -> None:
    assert wire.decode_message(VECTORS["disconnect_807"]).disconnect == 807
    assert wire.encode_disconnect(807) == VECTORS["disconnect_807"]


def test_every_spec_vector_is_what_our_encoder_writes() -> None:
    full = wire.decode_message(VECTORS["full_nse_fno_52175"]).ticks[0]
    quote = wire.decode_message(VECTORS["quote_nse_eq_1333"]).ticks[0]
    ticker = wire.decode_message(VECTORS["ticker_nse_eq_1333"]).ticks[0]
    assert wire.encode_tick(full) == VECTORS["full_nse_fno_52175"]
    assert wire.encode_tick(quote) == VECTORS["quote_nse_eq_1333"]
    assert wire.encode_tick(ticker) == VECTORS["ticker_nse_eq_1333"]
    assert wire.encode_oi("NSE_FNO|52175", 1234500) == VECTORS["oi_nse_fno_52175"]
    assert (
        wire.encode_prev_close("NSE_FNO|52175", 245.5, 1100000)
        == VECTORS["prev_close_nse_fno_52175"]
    )


def test_twenty_level_message_stacks_bid_then_ask_packets_as_in_spec_7_7() -> None:
    bids = [DepthLevel(round(1642.30 - 0.05 * i, 2), 100 + 10 * i, 1 + i) for i in range(20)]
    asks = [DepthLevel(round(1642.40 + 0.05 * i, 2), 200 + 10 * i, 2 + i) for i in range(20)]
    message = wire.encode_depth20("NSE_EQ|1333", bids, asks)
    assert len(message) == 664
    assert message[:32] == bytes.fromhex(
        "4c01290135050000000000003333333333a99940640000000100000000000000"
    )
    assert message[332:360] == bytes.fromhex(
        "4c01330135050000000000009a99999999a99940c800000002000000"
    )
    decoded = wire.decode_depth_message(message)
    assert decoded.depth == [("NSE_EQ|1333", True, bids), ("NSE_EQ|1333", False, asks)]


def test_two_hundred_level_vector_uses_its_row_count() -> None:
    decoded = wire.decode_depth_message(VECTORS["depth200_bid_nse_fno_52175"])
    rows = [DepthLevel(250.0, 1500, 12), DepthLevel(249.95, 900, 7), DepthLevel(249.9, 2250, 15)]
    assert decoded.depth == [("NSE_FNO|52175", True, rows)]


def test_depth_disconnect_is_read_from_either_documented_offset() -> None:
    assert wire.decode_depth_message(wire.encode_depth_disconnect(807)).disconnect == 807
    sdk_style = struct.pack("<hBBII", 12, 50, 0, 0, 805)
    assert wire.decode_depth_message(sdk_style).disconnect == 805


def test_several_packets_in_one_message_are_all_decoded() -> None:
    message = VECTORS["ticker_nse_eq_1333"] + VECTORS["full_nse_fno_52175"]
    assert [t.mode for t in wire.decode_message(message).ticks] == ["ltp", "full"]


# --------------------------------------------------------------------------- keys and requests


def test_security_ids_are_keyed_by_segment_so_equal_ids_never_collide() -> None:
    a = wire.encode_tick(Tick(source="dhan", token="NSE_EQ|1000", exchange="NSE", mode="ltp",
                              ltp=10.0))  # fmt: skip
    b = wire.encode_tick(Tick(source="dhan", token="IDX_I|1000", exchange="NSE_INDEX",
                              mode="ltp", ltp=20.0))  # fmt: skip
    ticks = wire.decode_message(a + b).ticks
    assert [(t.token, t.exchange, t.ltp) for t in ticks] == [
        ("NSE_EQ|1000", "NSE", 10.0), ("IDX_I|1000", "NSE_INDEX", 20.0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [("NSE_EQ|1333", ("NSE_EQ", 1333)), ("nfo|52175", ("NSE_FNO", 52175)),
     ("1|1333", ("NSE_EQ", 1333)), ("BSE_INDEX|51", ("IDX_I", 51))],
)  # fmt: skip
def test_keys_accept_segment_names_codes_and_canonical_exchanges(
    text: str, expected: tuple[str, int]
) -> None:
    assert wire.parse_key(text) == expected


@pytest.mark.parametrize("text", ["1333", "NSE_EQ|x", "XYZ|1", "NSE_EQ|99999999999"])
def test_bad_keys_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"SEGMENT|segment|32 bits"):
        wire.parse_key(text)


def test_subscriptions_are_split_into_messages_of_at_most_100_instruments() -> None:
    keys = [f"NSE_EQ|{i}" for i in range(250)]
    messages = [json.loads(m) for m in wire.encode_requests(wire.QUOTE, keys)]
    assert [m["InstrumentCount"] for m in messages] == [100, 100, 50]
    assert messages[0]["RequestCode"] == 17
    assert messages[0]["InstrumentList"][0] == {"ExchangeSegment": "NSE_EQ", "SecurityId": "0"}
    decoded = wire.decode_client_message(wire.encode_requests(wire.QUOTE, keys)[2])
    assert wire.keys_of(decoded.instruments) == keys[200:]


def test_a_request_with_a_wrong_instrument_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="InstrumentCount"):
        wire.decode_client_message(
            '{"RequestCode": 15, "InstrumentCount": 2, "InstrumentList": '
            '[{"ExchangeSegment": "NSE_EQ", "SecurityId": "1"}]}'
        )


@pytest.mark.parametrize(
    ("reason", "kind", "hint"),
    [(807, FeedAuthError, "generate a new access token"), (806, FeedAuthError, "Data APIs"),
     (808, FeedAuthError, "DHAN_CLIENT_ID"), (809, FeedAuthError, "marketpulse login dhan"),
     (810, FeedAuthError, "client id is invalid"), (805, DhanDisconnectError, "at most 5"),
     (804, FeedLimitError, "100 per request"), (800, DhanDisconnectError, "internal")],
)  # fmt: skip
def test_disconnect_reasons_map_to_actionable_errors(reason: int, kind: type, hint: str) -> None:
    error = disconnect_error(reason, "1000000001")
    assert type(error) is kind
    assert hint in str(error)


# --------------------------------------------------------------------------- round trips

_keys = st.builds(
    lambda seg, ident: f"{seg}|{ident}",
    st.sampled_from(["NSE_EQ", "NSE_FNO", "BSE_EQ", "MCX_COMM", "BSE_FNO", "IDX_I"]),
    st.integers(0, 2**32 - 1),
)
_prices = st.integers(0, 10_000_000).map(lambda paise: paise / 100)  # ≤ ₹100,000: f32-exact paise
_u32 = st.integers(0, 2**32 - 1)
_ltt = st.integers(wire.IST_OFFSET_SECONDS + 1, 2**31 - 1).map(
    lambda s: (s - wire.IST_OFFSET_SECONDS) * 1000
)
_levels = st.lists(st.builds(DepthLevel, _prices, _u32, st.integers(0, 65535)),
                   min_size=5, max_size=5)  # fmt: skip
_EXCHANGE = {"NSE_EQ": "NSE", "NSE_FNO": "NFO", "BSE_EQ": "BSE", "MCX_COMM": "MCX",
             "BSE_FNO": "BFO", "IDX_I": "NSE_INDEX"}  # fmt: skip
_DERIV = {"NSE_FNO", "MCX_COMM", "BSE_FNO"}


@st.composite
def ticks(draw: st.DrawFn) -> Tick:
    key = draw(_keys)
    segment = key.split("|")[0]
    mode = draw(st.sampled_from(["ltp", "quote", "full"]))
    base = Tick(
        source="dhan", token=key, exchange=_EXCHANGE[segment], mode=mode, ltp=draw(_prices),
        ts_last_trade=draw(_ltt), ts_recv=draw(st.integers(0, 2**62)),
    )  # fmt: skip
    if mode == "ltp":
        return base
    base.ltq, base.atp, base.volume = draw(st.integers(0, 65535)), draw(_prices), draw(_u32)
    base.total_buy_qty, base.total_sell_qty = draw(_u32), draw(_u32)
    base.open, base.high, base.low = draw(_prices), draw(_prices), draw(_prices)
    if mode == "full":
        if segment in _DERIV:
            base.oi, base.oi_day_high, base.oi_day_low = draw(_u32), draw(_u32), draw(_u32)
        base.bids, base.asks = draw(_levels), draw(_levels)
    return base


@given(ticks())
@settings(max_examples=300)
def test_every_tick_kind_round_trips_through_the_emulator_encoder(tick: Tick) -> None:
    decoded = wire.decode_message(wire.encode_tick(tick), tick.ts_recv)
    assert decoded.ticks == [tick] and not decoded.errors


@given(_keys, _prices, _u32, _u32, st.sampled_from([800, 804, 805, 806, 807, 808, 809, 810]))
def test_side_packets_round_trip(
    key: str, close: float, oi: int, prev_oi: int, reason: int
) -> None:
    decoded = wire.decode_message(
        wire.encode_prev_close(key, close, prev_oi) + wire.encode_oi(key, oi)
        + wire.encode_disconnect(reason)
    )  # fmt: skip
    assert decoded.prev_close == {key: (close, prev_oi)}
    assert (decoded.oi, decoded.disconnect, decoded.ticks) == ({key: oi}, reason, [])


@given(
    st.sampled_from(["NSE_EQ", "NSE_FNO"]).flatmap(
        lambda seg: st.integers(0, 2**32 - 1).map(lambda i: f"{seg}|{i}")
    ),
    st.lists(
        st.builds(DepthLevel, _prices.filter(bool), st.integers(1, 2**32 - 1), _u32),
        min_size=1,
        max_size=20,
    ),
    st.lists(
        st.builds(DepthLevel, _prices.filter(bool), st.integers(1, 2**32 - 1), _u32),
        min_size=1,
        max_size=20,
    ),
)
def test_twenty_level_books_round_trip(
    key: str, bids: list[DepthLevel], asks: list[DepthLevel]
) -> None:
    decoded = wire.decode_depth_message(wire.encode_depth20(key, bids, asks))
    assert decoded.depth == [(key, True, bids), (key, False, asks)] and not decoded.errors


@given(st.binary(max_size=400))
@settings(max_examples=500)
def test_random_bytes_never_raise_and_bad_packets_are_counted(data: bytes) -> None:
    for decoded in (wire.decode_message(data), wire.decode_depth_message(data)):
        # Every skip is counted, and explained while there is room (errors are capped at 8).
        errors = decoded.errors or []
        assert decoded.skipped >= len(errors)
        assert (decoded.skipped == 0) == (not errors)


@given(st.sampled_from(sorted(VECTORS)), st.integers(0, 200), st.integers(0, 255))
def test_corrupted_spec_vectors_never_raise(name: str, where: int, value: int) -> None:
    data = bytearray(VECTORS[name])
    data[where % len(data)] = value
    wire.decode_message(bytes(data))
    wire.decode_message(bytes(data[: where % len(data)]))
    wire.decode_depth_message(bytes(data))


def test_truncated_and_mislabelled_packets_are_skipped_with_a_reason() -> None:
    full = VECTORS["full_nse_fno_52175"]
    truncated = wire.decode_message(full[:100])
    assert truncated.ticks == [] and truncated.skipped == 1 and "length 162" in truncated.errors[0]
    wrong = bytearray(VECTORS["ticker_nse_eq_1333"])
    wrong[1] = 12  # a ticker that says it is 12 bytes long
    bad = wire.decode_message(bytes(wrong) + VECTORS["ticker_nse_eq_1333"])
    assert bad.skipped >= 1
    nan = bytearray(VECTORS["ticker_nse_eq_1333"])
    nan[8:12] = struct.pack("<f", float("nan"))
    assert wire.decode_message(bytes(nan)).skipped == 1

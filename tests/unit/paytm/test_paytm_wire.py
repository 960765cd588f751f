"""The Paytm wire codec: the spec's worked vectors (§10), hypothesis round trips of every packet
type, and fuzzed frames (a corrupt or unknown packet in the middle) that must never raise."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.feeds.paytm import wire
from marketpulse.model import DepthLevel, Tick

VECTORS = {
    name: bytes.fromhex(text.replace(" ", ""))
    for name, text in json.loads(
        (Path(__file__).parents[2] / "fixtures" / "paytm" / "spec_vectors.json").read_text()
    ).items()
}
TIME_MS = 1_721_018_730_000  # Mon 2024-07-15 10:15:30 IST; wire 1405485930 (1980 epoch)


def _book() -> wire.KeyBook:
    book = wire.KeyBook()
    assert book.add(["NSE:13:INDEX", "NSE:2885:EQUITY", "NSE:43210:OPTION"]) == []
    return book


def _one(name: str) -> Tick:
    decoded = wire.decode_frame(VECTORS[name], _book().labels, 7)
    assert decoded.errors == [] and len(decoded.ticks) == 1
    return decoded.ticks[0]


def test_index_ltp_vector_64_reads_absolute_change_before_percent() -> None:
    assert _one("index_ltp_64") == Tick(
        source="paytm", token="NSE:13:INDEX", exchange="NSE_INDEX", mode="ltp", ltp=24586.7,
        change=84.35, change_pct=0.34, ts_exchange=TIME_MS, ts_recv=7,
    )  # fmt: skip


def test_ltp_vector_61_converts_the_1980_epoch_to_utc_milliseconds() -> None:
    assert _one("ltp_61") == Tick(
        source="paytm", token="NSE:2885:EQUITY", exchange="NSE", mode="ltp", ltp=3180.55,
        change=25.4, change_pct=0.81, ts_last_trade=TIME_MS, ts_recv=7,
    )  # fmt: skip


def test_quote_vector_62_has_every_field_of_spec_10_3() -> None:
    tick = _one("quote_62")
    assert (tick.ltp, tick.ltq, tick.atp, tick.volume) == (3180.55, 15, 3172.4, 4567890)
    assert (tick.total_buy_qty, tick.total_sell_qty) == (345678, 456789)
    assert (tick.open, tick.close, tick.high, tick.low) == (3160.0, 3155.15, 3189.9, 3151.2)
    assert (tick.change_pct, tick.change, tick.high_52w, tick.low_52w) == (
        0.81, 25.4, 3217.9, 2220.3)  # fmt: skip
    assert tick.ts_last_trade == TIME_MS and tick.mode == "quote"


def test_full_vector_63_has_five_levels_both_sides_and_oi_for_an_option() -> None:
    tick = _one("full_63")
    assert (tick.token, tick.exchange, tick.mode) == ("NSE:43210:OPTION", "NFO", "full")
    assert tick.bids == [DepthLevel(112.3, 1500, 12), DepthLevel(112.25, 2750, 20),
                         DepthLevel(112.2, 900, 7), DepthLevel(112.15, 4200, 31),
                         DepthLevel(112.1, 600, 5)]  # fmt: skip
    assert tick.asks == [DepthLevel(112.4, 1250, 9), DepthLevel(112.45, 3000, 18),
                         DepthLevel(112.5, 1100, 8), DepthLevel(112.55, 3900, 25),
                         DepthLevel(112.6, 800, 6)]  # fmt: skip
    assert (tick.ltp, tick.ltq, tick.atp, tick.volume) == (112.35, 25, 108.9, 18254325)
    assert (tick.open, tick.close, tick.high, tick.low) == (95.0, 101.6, 119.45, 92.1)
    assert (tick.change_pct, tick.change, tick.high_52w, tick.low_52w) == (10.58, 10.75, 310.0,
                                                                            0.05)  # fmt: skip
    assert tick.oi == 5123400 and tick.ts_last_trade == TIME_MS
    assert struct.unpack_from("<i", VECTORS["full_63"], 171) == (-12500,)  # signed OI change


def test_index_quote_65_has_no_time_and_index_full_66_no_52_week_range() -> None:
    quote, full = _one("index_quote_65"), _one("index_full_66")
    assert (quote.open, quote.close, quote.high, quote.low) == (24550.1, 24502.35, 24601.8,
                                                                24512.25)  # fmt: skip
    assert (quote.high_52w, quote.low_52w, quote.ts_exchange) == (24635.8, 19281.75, None)
    assert (full.high_52w, full.low_52w, full.ts_exchange) == (None, None, TIME_MS)
    assert (full.change, full.change_pct, full.mode) == (84.35, 0.34, "full")


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_encoding_the_decoded_vector_gives_back_the_spec_bytes(name: str) -> None:
    oi_change = -12500 if name == "full_63" else 0
    assert wire.encode_tick(_one(name), oi_change=oi_change) == VECTORS[name]


def test_the_two_packet_frame_of_spec_10_2_decodes_to_both_ticks() -> None:
    frame = VECTORS["index_ltp_64"] + VECTORS["ltp_61"]
    assert len(frame) == 46
    ticks = wire.decode_frame(frame, _book().labels).ticks
    assert [(t.token, t.ltp) for t in ticks] == [("NSE:13:INDEX", 24586.7),
                                                 ("NSE:2885:EQUITY", 3180.55)]  # fmt: skip


def test_subscription_vector_of_spec_10_1_parses_and_our_encoder_matches_it() -> None:
    text = ('[{"actionType": "ADD", "modeType": "LTP", "scripType": "INDEX", "exchangeType": '
            '"NSE", "scripId": "13"}, {"actionType": "ADD", "modeType": "FULL", "scripType": '
            '"OPTION", "exchangeType": "NSE", "scripId": "43210"}]')  # fmt: skip
    prefs = wire.decode_preferences(text)
    assert [(p.action, p.mode, p.key) for p in prefs] == [
        ("ADD", "LTP", "NSE:13:INDEX"), ("ADD", "FULL", "NSE:43210:OPTION")]  # fmt: skip
    ours = wire.encode_preferences("ADD", "ltp", ["NSE:13:INDEX"])
    assert json.loads(ours) == json.loads(text)[:1]
    # whitespace differences do not matter (spec: parse, don't string-compare)
    assert wire.decode_preferences(text.replace(", ", ",").replace(": ", ":")) == prefs


@pytest.mark.parametrize(
    "text",
    ["{}", "[1]", '[{"actionType": "ADD"}]', "not json",
     '[{"actionType": "ADD", "modeType": "LTP", "scripType": "INDEX", "exchangeType": "MCX", '
     '"scripId": "13"}]'],
)  # fmt: skip
def test_malformed_subscriptions_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSON|array|object|lacks|exchange"):
        wire.decode_preferences(text)


def test_keys_are_exchange_id_and_scrip_type_and_bad_ones_say_the_form() -> None:
    assert wire.parse_key(" nse:2885:equity ") == ("NSE", 2885, "EQUITY")
    assert wire.canonical_exchange("BSE", "INDEX") == "BSE_INDEX"
    assert wire.canonical_exchange("BSE", "OPTION") == "BFO"
    for bad in ("2885", "NSE:2885", "NSE:x:EQUITY", "MCX:1:EQUITY", "NSE:1:BOND"):
        with pytest.raises(wire.InstrumentKeyError):
            wire.parse_key(bad)


def test_the_key_book_refuses_a_second_token_with_the_same_wire_identity() -> None:
    book = wire.KeyBook()
    assert book.add(["NSE:13:INDEX", "NSE:13:EQUITY", "BSE:13:EQUITY"]) == ["BSE:13:EQUITY"]
    assert book.learn('[{"actionType": "REMOVE", "modeType": "LTP", "scripType": "EQUITY", '
                      '"exchangeType": "NSE", "scripId": "13"}]')  # fmt: skip
    assert book.add(["BSE:13:EQUITY"]) == []
    assert not book.learn('{"message": "a server error"}')


def test_packets_for_ids_not_in_the_book_are_counted_not_decoded() -> None:
    book = wire.KeyBook()
    book.add(["NSE:13:INDEX"])
    decoded = wire.decode_frame(VECTORS["ltp_61"] + VECTORS["index_ltp_64"], book.labels)
    assert decoded.unmapped == 1 and [t.token for t in decoded.ticks] == ["NSE:13:INDEX"]


def test_without_a_book_the_token_is_the_bare_id() -> None:
    tick = wire.decode_frame(VECTORS["ltp_61"]).ticks[0]
    assert (tick.token, tick.exchange) == ("2885", "NSE")


# --------------------------------------------------------------------------- robustness


def test_an_unknown_type_byte_stops_the_frame_keeping_what_came_before() -> None:
    frame = VECTORS["ltp_61"] + b"\x07" + VECTORS["quote_62"] + VECTORS["index_ltp_64"]
    decoded = wire.decode_frame(frame, _book().labels)
    assert [t.ltp for t in decoded.ticks] == [3180.55]
    assert decoded.skipped == 1 and "unknown packet type 7 at offset 23" in decoded.errors[0]


def test_a_truncated_trailing_packet_is_counted_and_the_rest_kept() -> None:
    frame = VECTORS["quote_62"] + VECTORS["full_63"][:100]
    decoded = wire.decode_frame(frame, _book().labels)
    assert [t.mode for t in decoded.ticks] == ["quote"]
    assert decoded.skipped == 1 and "needs 175 bytes, 100 left" in decoded.errors[0]


def test_a_nan_price_skips_only_its_own_packet() -> None:
    bad = bytearray(VECTORS["ltp_61"])
    bad[1:5] = struct.pack("<f", float("nan"))
    frame = VECTORS["index_ltp_64"] + bytes(bad) + VECTORS["quote_62"]
    decoded = wire.decode_frame(frame, _book().labels)
    assert [t.mode for t in decoded.ticks] == ["ltp", "quote"] and decoded.skipped == 1


def test_an_empty_frame_is_nothing() -> None:
    assert wire.decode_frame(b"") == wire.Decoded()


_prices = st.integers(1, 13_000_000).map(lambda paise: paise / 100)  # below ₹131,072
_qty = st.integers(0, 2**31 - 1)
_time = st.integers(wire.EPOCH_OFFSET + 1, 2**31 - 1).map(lambda s: s * 1000)
_change = st.integers(-1_000_000, 1_000_000).map(lambda p: p / 100)


@st.composite
def _ticks(draw: st.DrawFn) -> Tick:
    scrip_type = draw(st.sampled_from(wire.SCRIP_TYPES))
    exchange = draw(st.sampled_from(wire.EXCHANGES))
    key = wire.make_key(exchange, draw(st.integers(1, 2**32 - 1)), scrip_type)
    mode = draw(st.sampled_from(["ltp", "quote", "full"]))
    index = scrip_type == "INDEX"
    base = {"source": "paytm", "token": key, "mode": mode, "ltp": draw(_prices),
            "exchange": wire.canonical_exchange(exchange, scrip_type),
            "change": draw(_change), "change_pct": draw(_change)}  # fmt: skip
    when = draw(_time)
    if mode != "ltp":
        base.update(open=draw(_prices), close=draw(_prices), high=draw(_prices),
                    low=draw(_prices))  # fmt: skip
    if index:
        if mode != "quote":
            base["ts_exchange"] = when
        if mode == "quote":
            base.update(high_52w=draw(_prices), low_52w=draw(_prices))
        return Tick(**base)
    base["ts_last_trade"] = when
    if mode == "ltp":
        return Tick(**base)
    base.update(
        ltq=draw(_qty),
        atp=draw(_prices),
        volume=draw(_qty),
        total_buy_qty=draw(_qty),
        total_sell_qty=draw(_qty),
        high_52w=draw(_prices),
        low_52w=draw(_prices),
    )
    if mode == "full":
        level = st.builds(DepthLevel, _prices, _qty, st.integers(0, 32767))
        base.update(
            bids=draw(st.lists(level, min_size=5, max_size=5)),
            asks=draw(st.lists(level, min_size=5, max_size=5)),
        )
        if scrip_type in wire.DERIVATIVES:
            base["oi"] = draw(_qty)
    return Tick(**base)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_ticks(), min_size=1, max_size=6, unique_by=lambda t: wire.KeyBook.lookup(t.token)))
def test_any_ticks_round_trip_through_one_concatenated_frame(ticks: list[Tick]) -> None:
    book = wire.KeyBook()
    assert book.add([t.token for t in ticks]) == []
    frame = b"".join(wire.encode_tick(t) for t in ticks)
    decoded = wire.decode_frame(frame, book.labels)
    assert decoded.errors == [] and decoded.ticks == ticks


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_ticks(), min_size=2, max_size=5, unique_by=lambda t: wire.KeyBook.lookup(t.token)),
    st.data(),
)
def test_a_corrupt_packet_in_the_middle_never_raises_and_never_misattributes(
    ticks: list[Tick], data: st.DataObject
) -> None:
    book = wire.KeyBook()
    book.add([t.token for t in ticks])
    packets = [wire.encode_tick(t) for t in ticks]
    at = data.draw(st.integers(0, len(packets) - 1))
    how = data.draw(st.sampled_from(["unknown type", "truncate", "garbage"]))
    corrupt = packets[at]
    if how == "unknown type":
        corrupt = bytes([data.draw(st.integers(0, 255).filter(lambda b: b not in wire.SIZES))])
        corrupt += packets[at][1:]
    elif how == "truncate":
        corrupt = corrupt[: data.draw(st.integers(0, len(corrupt) - 1))]
    else:
        corrupt = data.draw(st.binary(max_size=200))
    frame = b"".join(packets[:at]) + corrupt + b"".join(packets[at + 1 :])
    decoded = wire.decode_frame(frame, book.labels)  # must not raise
    assert decoded.ticks[:at] == ticks[:at]  # everything before the corrupt packet, exactly
    if how == "unknown type":  # the rest of the frame cannot be delimited: stop there
        assert decoded.ticks == ticks[:at] and decoded.skipped == 1
    assert {t.token for t in decoded.ticks} <= {t.token for t in ticks}


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    decoded = wire.decode_frame(data, _book().labels, 1)
    assert decoded.skipped <= 1 + len(data) // 23

"""The Yahoo streamer codec: the spec's worked examples (§A7), both envelopes, hypothesis round
trips through our encoder and decoder, yfinance's decoder as an independent reader of what we
encode, and fuzzed frames that must never raise."""

from __future__ import annotations

import base64
import json
import logging
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.feeds.yahoo import wire
from marketpulse.feeds.yahoo.wire import PricingData
from marketpulse.model import DepthLevel, Tick

FIXTURES = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "yahoo" / "spec_vectors.json").read_text()
)
VECTORS = FIXTURES["messages"]
TIME_MS = 1721018730000  # 2024-07-15 10:15:30 IST

RELIANCE = PricingData(
    id="RELIANCE.NS", price=3180.55, time=TIME_MS, currency="INR", exchange="NSI", quote_type=8,
    market_hours=1, change_percent=0.81, day_volume=4567890, day_high=3189.9, day_low=3151.2,
    change=25.4, short_name="RELIANCE INDUSTRIES", open_price=3160.0, previous_close=3155.15,
    price_hint=2,
)  # fmt: skip
NSEI = PricingData(
    id="^NSEI", price=24586.7, time=TIME_MS, currency="INR", exchange="NSI", quote_type=9,
    market_hours=1, change_percent=0.34, day_high=24601.8, day_low=24512.25, change=84.35,
    short_name="NIFTY 50", open_price=24550.1, previous_close=24502.35, price_hint=2,
)  # fmt: skip
X_NS = PricingData(id="X.NS", price=99.5, time=TIME_MS, quote_type=8, market_hours=2,
                   change_percent=-1.25, change=-1.26, price_hint=2)  # fmt: skip


def _bytes(name: str) -> bytes:
    return base64.b64decode(VECTORS[name]["base64"])


@pytest.mark.parametrize(
    ("name", "message"),
    [("reliance_ns", RELIANCE), ("nsei", NSEI), ("x_ns_post_market", X_NS)],
)
def test_our_encoder_writes_the_spec_examples_byte_for_byte(
    name: str, message: PricingData
) -> None:
    encoded = wire.encode_pricing(message)
    assert encoded.hex() == VECTORS[name]["hex"]
    assert base64.b64encode(encoded).decode() == VECTORS[name]["base64"]


def test_example_1_decodes_to_a_tick_with_utc_ms_time_and_price_hint_rounding() -> None:
    tick = wire.to_tick(wire.decode_pricing(_bytes("reliance_ns")), 7)
    assert tick == Tick(
        source="yahoo", token="RELIANCE.NS", exchange="NSE", mode="quote", ltp=3180.55,
        symbol="RELIANCE.NSE", volume=4567890, open=3160.0, high=3189.9, low=3151.2,
        close=3155.15, change=25.4, change_pct=0.81, ts_exchange=TIME_MS, ts_recv=7,
    )  # fmt: skip


def test_example_2_is_the_nifty_index_without_volume() -> None:
    tick = wire.to_tick(wire.decode_pricing(_bytes("nsei")))
    assert tick is not None
    assert (tick.symbol, tick.exchange, tick.token) == ("NIFTY50.NSE_INDEX", "NSE_INDEX", "^NSEI")
    assert (tick.ltp, tick.volume, tick.close, tick.change) == (24586.7, None, 24502.35, 84.35)


def test_example_3_keeps_negative_change_and_post_market_hours() -> None:
    message = wire.decode_pricing(_bytes("x_ns_post_market"))
    assert (message.market_hours, wire.MARKET_HOURS[message.market_hours]) == (2, "POST_MARKET")
    tick = wire.to_tick(message)
    assert tick is not None and (tick.change, tick.change_pct, tick.close) == (-1.26, -1.25, None)


def test_the_real_btc_message_decodes_as_yfinance_decodes_it() -> None:
    message = wire.decode_pricing(_bytes("btc_usd_real"))
    assert wire.message_dict(message) == {
        "id": "BTC-USD", "price": 94745.08, "time": 1736509140000, "currency": "USD",
        "exchange": "CCC", "quote_type": 41, "market_hours": 1, "change_percent": 1.5344921,
        "day_volume": 59712028672, "day_high": 95227.555, "day_low": 92517.22,
        "change": 1431.8906, "open_price": 92529.99, "last_size": 59712028672, "price_hint": 2,
        "vol_24hr": 59712028672, "vol_all_currencies": 59712028672, "from_currency": "BTC",
        "circulating_supply": 19808172.0, "market_cap": 1876726640000.0,
    }  # fmt: skip
    tick = wire.to_tick(message)
    assert tick is not None and (tick.symbol, tick.exchange) == ("BTC-USD.CRYPTO", "CRYPTO")
    assert tick.ltq is None  # crypto's last_size is the day volume, not a trade size


def test_the_2020_legacy_frame_is_bare_base64_and_decodes_msft_on_nasdaq() -> None:
    decoded = wire.decode_frame(VECTORS["msft_legacy_2020"]["base64"], 1)
    assert decoded.tick is not None
    assert (decoded.tick.symbol, decoded.tick.ltp, decoded.tick.ts_exchange) == (
        "MSFT.NASDAQ", 177.29, 1589555123000)  # fmt: skip


def test_the_version_2_envelope_of_example_1_gives_the_same_tick_as_the_bare_payload() -> None:
    text = VECTORS["reliance_ns"]["base64"]
    frame = '{"type": "pricing", "message": "' + text + '"}'
    assert wire.encode_frame(RELIANCE) == frame
    assert wire.encode_frame(RELIANCE, legacy=True) == text
    assert wire.decode_frame(frame, 5) == wire.decode_frame(text, 5)
    assert wire.decode_frame(frame.encode(), 5).tick == wire.decode_frame(frame, 5).tick


@pytest.mark.parametrize(
    "frame", ['{"type": "heartbeat", "message": "CgRYLk5T"}', "{}", '{"type": "pricing"}', ""]
)
def test_frames_without_a_pricing_payload_are_ignored_not_errors(frame: str) -> None:
    decoded = wire.decode_frame(frame)
    assert (decoded.tick, decoded.error, decoded.ignored) == (None, None, True)


def test_fields_in_any_order_and_unknown_fields_are_accepted() -> None:
    ordered = wire.encode_pricing(X_NS)
    unknown = bytes([0xA0, 0x1F, 0x05]) + bytes([0x9A, 0x1F, 0x02]) + b"hi"  # fields 500, 499
    shuffled = ordered[len(ordered) - 3 :] + unknown + ordered[: len(ordered) - 3]
    assert wire.decode_pricing(shuffled) == wire.decode_pricing(ordered)
    assert wire.message_dict(wire.decode_pricing(shuffled)) == wire.message_dict(X_NS)


def test_a_negative_int32_takes_ten_bytes_and_reads_back() -> None:
    encoded = wire.encode_pricing(PricingData(quote_type=-1))
    assert encoded == bytes([0x30]) + b"\xff" * 9 + b"\x01"
    assert wire.decode_pricing(encoded).quote_type == -1


def test_options_type_reads_both_the_enum_and_the_sint64_spelling_of_put() -> None:
    assert [wire.options_type_name(raw) for raw in (0, 1, 2, 9)] == [
        "CALL", "PUT", "PUT", "UNKNOWN(9)"]  # fmt: skip
    assert wire.decode_pricing(bytes([0xA0, 0x01, 0x01])).options_type == 1


def test_bid_and_ask_become_one_level_books_and_last_size_the_ltq() -> None:
    message = PricingData(id="INFY.NS", price=1500.25, exchange="NSI", bid=1500.2, bid_size=40,
                          ask=1500.3, ask_size=15, last_size=7, price_hint=2)  # fmt: skip
    tick = wire.to_tick(wire.decode_pricing(wire.encode_pricing(message)))
    assert tick is not None
    assert (tick.bids, tick.asks, tick.ltq) == (
        [DepthLevel(1500.2, 40, 0)], [DepthLevel(1500.3, 15, 0)], 7)  # fmt: skip


def test_change_is_derived_from_previous_close_when_the_message_left_it_out() -> None:
    tick = wire.to_tick(PricingData(id="SBIN.NS", price=101.0, previous_close=100.0,
                                    price_hint=2))  # fmt: skip
    assert tick is not None and (tick.change, tick.change_pct) == (1.0, 1.0)


def test_ids_without_a_canonical_form_keep_yahoos_exchange_code_and_no_symbol() -> None:
    tick = wire.to_tick(PricingData(id="^GSPC", price=5000.5, exchange="SNP", price_hint=2))
    assert tick is not None and (tick.symbol, tick.exchange, tick.key) == (
        None, "SNP", "yahoo:^GSPC")  # fmt: skip


@pytest.mark.parametrize(
    ("value", "short"),
    [(0.8100000023841858, 0.81), (3180.550048828125, 3180.55), (1.5344921350479126, 1.5344921)],
)
def test_f32_short_is_the_shortest_decimal_of_the_same_float32(value: float, short: float) -> None:
    assert wire.f32_short(value) == short


def test_client_messages_are_yfinance_json_and_malformed_ones_are_refused() -> None:
    assert wire.encode_subscribe(["RELIANCE.NS", "^NSEI"]) == (
        '{"subscribe": ["RELIANCE.NS", "^NSEI"]}')  # fmt: skip
    assert wire.encode_unsubscribe(["RELIANCE.NS"]) == '{"unsubscribe": ["RELIANCE.NS"]}'
    parsed = wire.decode_client_message('{"subscribe": ["A.NS"], "unsubscribe": ["B.NS"]}')
    assert parsed == [wire.ClientMessage("subscribe", ("A.NS",)),
                      wire.ClientMessage("unsubscribe", ("B.NS",))]  # fmt: skip
    assert wire.decode_client_message("{}") == []
    for bad in ('{"subscribe": "X"}', "not json", '{"sub": ["X"]}', '{"subscribe": [null]}', "[]"):
        with pytest.raises(ValueError, match=r"JSON|unknown key|list of strings"):
            wire.decode_client_message(bad)


# --------------------------------------------------------------------------- round trips

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
i64 = st.integers(-(2**63), 2**63 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=30)
_STRATEGY = {wire.STRING: text, wire.FLOAT: f32, wire.SINT64: i64, wire.INT32: i32,
             wire.RAW: st.integers(0, 2**64 - 1),
             wire.DOUBLE: st.floats(allow_nan=False, allow_infinity=False)}  # fmt: skip
messages = st.builds(
    PricingData,
    **{name: _STRATEGY[kind] for name, kind in zip(wire.FIELD_NAMES, wire.FIELD_KINDS,
                                                   strict=True)},
)  # fmt: skip


@given(messages)
def test_every_message_round_trips_through_encode_and_decode(message: PricingData) -> None:
    decoded = wire.decode_pricing(wire.encode_pricing(message))
    assert decoded == message or (
        # -0.0 is a default value in proto3 and is not transmitted
        wire.message_dict(decoded) == wire.message_dict(message)
    )


@given(messages)
def test_every_frame_round_trips_through_both_envelopes(message: PricingData) -> None:
    for legacy in (False, True):
        frame = wire.encode_frame(message, legacy=legacy)
        payload = wire.unwrap(frame)
        assert payload is not None
        assert wire.message_dict(wire.decode_base64(payload)) == wire.message_dict(message)


prices = st.decimals(min_value="0.05", max_value="99999.95", places=2).map(float)


@given(
    ltp=prices, close=prices, high=prices, low=prices, open_=prices,
    volume=st.integers(0, 2**40), seconds=st.integers(1_500_000_000, 2_000_000_000),
)  # fmt: skip
def test_ticks_survive_the_emulators_encoding_with_exact_two_decimal_prices(
    ltp: float, close: float, high: float, low: float, open_: float, volume: int, seconds: int
) -> None:
    tick = Tick(source="yahoo", token="INFY.NS", exchange="NSE", mode="quote", ltp=ltp,
                symbol="INFY.NSE", volume=volume or None, open=open_, high=high, low=low,
                close=close, change=0.5, change_pct=0.25,
                ts_exchange=seconds * 1000 + 999)  # fmt: skip
    message = wire.pricing_of_tick(tick, yahoo_id="INFY.NS", exchange_code="NSI", quote_type=8,
                                   currency="INR")  # fmt: skip
    decoded = wire.decode_frame(wire.encode_frame(message), 3).tick
    assert decoded is not None
    assert (decoded.ltp, decoded.open, decoded.high, decoded.low, decoded.close) == (
        ltp, open_, high, low, close)  # fmt: skip
    assert (decoded.volume, decoded.ts_exchange, decoded.symbol) == (
        volume or None, seconds * 1000, "INFY.NSE")  # fmt: skip


# --------------------------------------------------------------------------- yfinance


@pytest.fixture(scope="module")
def yfinance_decode() -> Any:
    yf_live = pytest.importorskip("yfinance.live")
    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    return yf_live.BaseWebSocket(url="ws://127.0.0.1:9/", verbose=False)._decode_message


def _yfinance_view(message: PricingData) -> dict[str, Any]:
    """Our message as yfinance's MessageToDict prints it: 64-bit ints as strings, field 20 as
    the sint64 yfinance declares."""
    out: dict[str, Any] = {}
    for name, value in wire.message_dict(message).items():
        kind = wire.FIELD_KINDS[wire.FIELD_NAMES.index(name)]
        if kind == wire.RAW:
            value = (value >> 1) ^ -(value & 1)
            if value == 0:
                continue
        out[name] = str(value) if kind in (wire.SINT64, wire.RAW) else value
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages.filter(lambda m: not m.options_type or m.options_type < 2**63))
def test_yfinance_decodes_what_our_encoder_writes(
    yfinance_decode: Any, message: PricingData
) -> None:
    text = base64.b64encode(wire.encode_pricing(message)).decode()
    assert yfinance_decode(text) == _yfinance_view(message)


def test_yfinance_and_we_agree_on_the_spec_messages(yfinance_decode: Any) -> None:
    for vector in VECTORS.values():
        ours = wire.decode_base64(vector["base64"])
        assert yfinance_decode(vector["base64"]) == _yfinance_view(ours)


# --------------------------------------------------------------------------- fuzz

_valid = [wire.encode_pricing(m) for m in (RELIANCE, NSEI, X_NS)]


@given(st.binary(max_size=200))
def test_random_protobuf_bytes_never_raise_out_of_decode_frame(data: bytes) -> None:
    b64 = base64.b64encode(data).decode()
    for frame in (b64, '{"type": "pricing", "message": "' + b64 + '"}'):
        decoded = wire.decode_frame(frame, 1)
        assert decoded.tick is not None or decoded.error is not None or decoded.ignored


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_random_frames_never_raise(frame: str | bytes) -> None:
    decoded = wire.decode_frame(frame, 1)
    assert decoded.tick is None or isinstance(decoded.tick, Tick)


@given(st.sampled_from(_valid), st.data())
def test_truncated_or_corrupted_messages_are_errors_not_exceptions(
    valid: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(valid) - 1))
    flip = data.draw(st.integers(0, len(valid) - 1))
    corrupted = bytearray(valid)
    corrupted[flip] ^= data.draw(st.integers(1, 255))
    for raw in (valid[:cut], bytes(corrupted)):
        decoded = wire.decode_frame(base64.b64encode(raw).decode(), 1)
        assert decoded.error is not None or decoded.tick is not None or decoded.ignored


def test_a_truncated_message_names_the_problem() -> None:
    decoded = wire.decode_frame(base64.b64encode(_valid[0][:20]).decode())
    assert decoded.error is not None and decoded.error.startswith("protobuf: ")
    assert struct.calcsize("<f") == 4

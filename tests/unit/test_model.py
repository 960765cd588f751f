"""The canonical vocabulary: symbol spellings, the Tick JSON contract, derivative names."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketpulse.model import (
    TICK_FIELDS,
    DepthLevel,
    Exchange,
    SymbolError,
    Tick,
    decode_tick,
    encode_tick,
    normalize_symbol,
    parse_derivative_name,
    price_change,
)

# The contract of ARCHITECTURE §3: later tools compare against exactly these names.
CONTRACT = {
    "source", "token", "exchange", "symbol", "mode", "ltp", "ltq", "atp", "volume",
    "total_buy_qty", "total_sell_qty", "open", "high", "low", "close", "change", "change_pct",
    "oi", "oi_day_high", "oi_day_low", "upper_circuit", "lower_circuit", "high_52w", "low_52w",
    "ts_exchange", "ts_last_trade", "ts_recv", "bids", "asks",
}  # fmt: skip


def test_tick_fields_are_exactly_the_architecture_contract() -> None:
    assert set(TICK_FIELDS) == CONTRACT


def test_tick_json_omits_absent_fields_and_writes_depth_as_triples() -> None:
    tick = Tick(
        source="kite",
        token="408065",
        exchange="NSE",
        mode="full",
        ltp=1612.5,
        symbol="INFY.NSE",
        bids=[DepthLevel(1612.45, 10, 2)],
        asks=[],
    )
    assert msgspec.json.decode(encode_tick(tick)) == {
        "source": "kite", "token": "408065", "exchange": "NSE", "mode": "full", "ltp": 1612.5,
        "symbol": "INFY.NSE", "bids": [[1612.45, 10, 2]], "asks": [],
    }  # fmt: skip


@given(
    ltp=st.floats(min_value=0.01, max_value=1e7, allow_nan=False),
    volume=st.none() | st.integers(min_value=0, max_value=2**62),
    ts=st.none() | st.integers(min_value=0, max_value=2**45),
    depth=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1e7, allow_nan=False),
            st.integers(0, 2**40),
            st.integers(0, 2**31),
        ),
        max_size=20,
    ),
)
def test_tick_json_round_trips(
    ltp: float, volume: int | None, ts: int | None, depth: list[tuple[float, int, int]]
) -> None:
    levels = [DepthLevel(*d) for d in depth]
    tick = Tick(
        source="sim",
        token="1",
        exchange="NFO",
        mode="full",
        ltp=ltp,
        volume=volume,
        ts_exchange=ts,
        bids=levels,
        asks=list(reversed(levels)),
    )
    assert decode_tick(encode_tick(tick)) == tick


def test_decoding_a_bad_tick_document_raises_a_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_tick(b'{"source": "sim", "token": "1", "exchange": "NSE", "mode": "ltp"}')


def test_tick_key_is_the_symbol_or_source_and_token() -> None:
    base = {"source": "kite", "token": "5", "exchange": "NSE", "mode": "ltp", "ltp": 1.0}
    assert Tick(**base, symbol="ABC.NSE").key == "ABC.NSE"
    assert Tick(**base).key == "kite:5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RELIANCE.NSE", "RELIANCE.NSE"),
        ("reliance.nse", "RELIANCE.NSE"),
        (" NSE:RELIANCE ", "RELIANCE.NSE"),
        ("RELIANCE.NS", "RELIANCE.NSE"),
        ("RELIANCE.BO", "RELIANCE.BSE"),
        ("M&M.NSE", "M&M.NSE"),
        ("BAJAJ-AUTO.NS", "BAJAJ-AUTO.NSE"),
        ("^NSEI", "NIFTY50.NSE_INDEX"),
        ("^NSEBANK", "NIFTYBANK.NSE_INDEX"),
        ("^BSESN", "SENSEX.BSE_INDEX"),
        ("NIFTY50.NSE", "NIFTY50.NSE_INDEX"),
        ("NSE:NIFTY 50", "NIFTY50.NSE_INDEX"),
        ("NSE:NIFTY BANK", "NIFTYBANK.NSE_INDEX"),
        ("SENSEX.BSE", "SENSEX.BSE_INDEX"),
        ("BSE:SENSEX", "SENSEX.BSE_INDEX"),
        ("NIFTY50.NSE_INDEX", "NIFTY50.NSE_INDEX"),
        ("NIFTY27NOV2524500CE.NFO", "NIFTY27NOV2524500CE.NFO"),
        ("AAPL.NASDAQ", "AAPL.NASDAQ"),
    ],
)
def test_accepted_spellings_normalise_to_the_canonical_symbol(text: str, expected: str) -> None:
    assert normalize_symbol(text) == expected


def test_bare_name_uses_the_default_exchange_when_given() -> None:
    assert normalize_symbol("AAPL", Exchange.NASDAQ) == "AAPL.NASDAQ"
    assert normalize_symbol("NIFTY 50") == "NIFTY50.NSE_INDEX"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty symbol"),
        ("RELIANCE", "has no exchange; write it as NAME.EXCHANGE, for example RELIANCE.NSE"),
        ("RELIANCE.XYZ", "unknown exchange 'XYZ'"),
        ("NSE:", "has no name"),
        (".NSE", "has no name"),
        ("REL IANCE.NSE", "invalid instrument name"),
        ("DROP;TABLE.NSE", "invalid instrument name"),
    ],
)
def test_bad_symbols_get_an_error_that_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(SymbolError, match=message.replace("(", r"\(").replace(".", r"\.")):
        normalize_symbol(text)


def test_derivative_names_split_into_underlying_expiry_and_contract() -> None:
    option = parse_derivative_name("NIFTY27NOV2524500CE")
    assert option is not None
    assert (option.underlying, option.expiry, option.instrument_type, option.strike) == (
        "NIFTY",
        date(2025, 11, 27),
        "CE",
        24500.0,
    )
    future = parse_derivative_name("BANKNIFTY30DEC25FUT")
    assert future is not None
    assert (future.underlying, future.instrument_type, future.strike) == ("BANKNIFTY", "FUT", None)
    assert parse_derivative_name("RELIANCE") is None


def test_price_change_is_relative_to_the_previous_close() -> None:
    assert price_change(110.0, 100.0) == (10.0, 10.0)
    assert price_change(110.0, None) == (None, None)
    assert price_change(110.0, 0.0) == (None, None)


def test_strikes_are_written_the_same_way_by_every_instrument_master() -> None:
    from marketpulse.model import format_strike

    assert format_strike(24500.0) == "24500"
    assert format_strike(83.25) == "83_25"  # '.' separates the exchange in a symbol
    assert format_strike(1_245_000.0) == "1245000"  # never 1.245e+06
    assert format_strike(0.0) == "0"

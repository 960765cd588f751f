"""Angel One's instrument master → canonical instrument records."""

from __future__ import annotations

import json
from datetime import date

import pytest

from marketpulse.emulators.angelone.master import master_rows
from marketpulse.feeds.angelone.master import MasterRow, parse_expiry, parse_master, parse_row
from marketpulse.feeds.simulator import default_universe
from marketpulse.store.instruments import InstrumentRecord


def row(**fields: str) -> MasterRow:
    base = {"expiry": "", "strike": "-1.000000", "lotsize": "1", "instrumenttype": "",
            "tick_size": "5.000000"}  # fmt: skip
    return MasterRow(**{**base, **fields})


def test_nse_equity_drops_the_eq_series_and_scales_the_tick_size_from_paise() -> None:
    record = parse_row(row(token="2885", symbol="RELIANCE-EQ", name="RELIANCE", exch_seg="NSE"))
    assert record == InstrumentRecord(
        "RELIANCE.NSE", "NSE", "2885", "RELIANCE-EQ", "RELIANCE", "EQ", 1, 0.05
    )


def test_other_series_keep_their_suffix_because_they_are_other_instruments() -> None:
    record = parse_row(row(token="1", symbol="XYZ-BE", name="XYZ", exch_seg="NSE"))
    assert isinstance(record, InstrumentRecord)
    assert record.symbol == "XYZ-BE.NSE"


def test_bse_equity_has_no_series_suffix() -> None:
    record = parse_row(row(token="500325", symbol="RELIANCE", name="RELIANCE", exch_seg="BSE",
                           tick_size="10.000000"))  # fmt: skip
    assert isinstance(record, InstrumentRecord)
    assert (record.symbol, record.exchange, record.tick_size) == ("RELIANCE.BSE", "BSE", 0.1)


@pytest.mark.parametrize(
    ("symbol", "name", "segment", "expected"),
    [
        ("Nifty 50", "NIFTY", "NSE", "NIFTY50.NSE_INDEX"),
        ("Nifty Bank", "BANKNIFTY", "NSE", "NIFTYBANK.NSE_INDEX"),
        ("India VIX", "INDIA VIX", "NSE", "INDIAVIX.NSE_INDEX"),
        ("SENSEX", "SENSEX", "BSE", "SENSEX.BSE_INDEX"),
        ("Nifty Fin Service", "FINNIFTY", "NSE", "NIFTYFINSERVICE.NSE_INDEX"),
    ],
)
def test_indices_go_to_the_index_segment_under_the_models_aliases(
    symbol: str, name: str, segment: str, expected: str
) -> None:
    record = parse_row(row(token="99926000", symbol=symbol, name=name, exch_seg=segment,
                           instrumenttype="AMXIDX", tick_size="0.000000"))  # fmt: skip
    assert isinstance(record, InstrumentRecord)
    assert (record.symbol, record.instrument_type, record.tick_size) == (expected, "INDEX", 0.0)
    assert record.exchange == expected.rpartition(".")[2]


def test_futures_are_rebuilt_from_name_and_expiry_whatever_angels_symbol_says() -> None:
    record = parse_row(row(token="61000", symbol="SENSEX25DECFUT", name="SENSEX", exch_seg="BFO",
                           expiry="24DEC2025", lotsize="20", instrumenttype="FUTIDX"))  # fmt: skip
    assert record == InstrumentRecord(
        "SENSEX24DEC25FUT.BFO", "BFO", "61000", "SENSEX25DECFUT", "SENSEX", "FUT", 20, 0.05,
        date(2025, 12, 24),
    )  # fmt: skip


def test_options_take_their_strike_from_paise_and_their_right_from_the_symbol() -> None:
    record = parse_row(row(token="43650", symbol="NIFTY30DEC2524500CE", name="NIFTY",
                           exch_seg="NFO", expiry="30DEC2025", strike="2450000.000000",
                           lotsize="75", instrumenttype="OPTIDX"))  # fmt: skip
    assert isinstance(record, InstrumentRecord)
    assert record.symbol == "NIFTY30DEC2524500CE.NFO"
    assert (record.instrument_type, record.strike, record.lot_size) == ("CE", 24500.0, 75)


def test_currency_option_strikes_use_the_segment_scale() -> None:
    record = parse_row(row(token="5", symbol="USDINR25DEC84PE", name="USDINR", exch_seg="CDS",
                           expiry="26DEC2025", strike="840000000.000000",
                           instrumenttype="OPTCUR", tick_size="0.250000"))  # fmt: skip
    assert isinstance(record, InstrumentRecord)
    assert (record.symbol, record.strike, record.tick_size) == ("USDINR26DEC2584PE.CDS", 84.0,
                                                                0.0025)  # fmt: skip


def test_rows_the_vocabulary_cannot_name_are_skipped_and_counted() -> None:
    rows = [
        row(token="1", symbol="RELIANCE-EQ", name="RELIANCE", exch_seg="NSE"),
        row(token="2", symbol="GUARSEED", name="GUARSEED", exch_seg="NCDEX",
            instrumenttype="FUTCOM", expiry="19DEC2025"),
        row(token="3", symbol="IDEA30DEC257.5CE", name="IDEA", exch_seg="NFO",
            instrumenttype="OPTSTK", expiry="30DEC2025", strike="750.000000"),
        row(token="4", symbol="MCXBULLDEX", name="MCXBULLDEX", exch_seg="MCX",
            instrumenttype="AMXIDX"),
        row(token="", symbol="", name="", exch_seg="NSE"),
        row(token="6", symbol="SOME FUND", name="SOME FUND", exch_seg="NSE"),
    ]  # fmt: skip
    raw = json.dumps([{k: getattr(r, k) for k in r.__struct_fields__} for r in rows]).encode()
    parsed = parse_master(raw)
    assert [r.symbol for r in parsed.records] == ["RELIANCE.NSE"]
    assert parsed.skipped == {
        "NCDEX instruments (no canonical exchange)": 1,
        "options with fractional strikes": 1,
        "MCX indices (no canonical exchange)": 1,
        "malformed rows": 1,
        "unnameable instruments": 1,
    }
    assert "1 instruments; skipped" in parsed.summary()


def test_numbers_and_nulls_in_fields_are_tolerated() -> None:
    raw = b'[{"token": 2885, "symbol": "RELIANCE-EQ", "name": "RELIANCE", "expiry": null,' \
          b' "strike": -1, "lotsize": 1, "instrumenttype": "", "exch_seg": "NSE",' \
          b' "tick_size": 5}]'  # fmt: skip
    assert [r.token for r in parse_master(raw).records] == ["2885"]


def test_a_document_that_is_not_the_master_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not the expected JSON"):
        parse_master(b'{"error": "maintenance"}')


@pytest.mark.parametrize(
    ("text", "expected"),
    [("27NOV2025", date(2025, 11, 27)), ("01jan2026", date(2026, 1, 1)), ("", None),
     ("31FEB2025", None), ("2025-11-27", None), ("27XYZ2025", None)],
)  # fmt: skip
def test_expiry_format_is_parsed_independently_of_the_locale(
    text: str, expected: date | None
) -> None:
    assert parse_expiry(text) == expected


def test_the_emulators_master_maps_back_onto_the_simulator_universe() -> None:
    universe = default_universe(date(2025, 11, 20))
    raw = json.dumps(master_rows(universe)).encode()
    parsed = parse_master(raw)
    assert parsed.skipped == {}
    assert {(r.symbol, r.token) for r in parsed.records} == {
        (spec.symbol, spec.token) for spec in universe.specs
    }
    by_symbol = {r.symbol: r for r in parsed.records}
    future = next(s for s in universe.specs if s.instrument.instrument_type == "FUT")
    record = by_symbol[future.symbol]
    assert (record.expiry, record.lot_size) == (future.instrument.expiry,
                                                future.instrument.lot_size)  # fmt: skip
    assert by_symbol["NIFTY50.NSE_INDEX"].instrument_type == "INDEX"
    assert by_symbol["RELIANCE.NSE"].broker_symbol == "RELIANCE-EQ"

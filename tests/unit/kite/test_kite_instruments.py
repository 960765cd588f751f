"""Kite's instrument dump → canonical instrument records (pure parsing)."""

from __future__ import annotations

from datetime import date

import pytest

from marketpulse.emulators.kite.listing import KiteListing
from marketpulse.feeds.kite.instruments import (
    InstrumentMasterError,
    KiteInstrument,
    decode_rows,
    encode_rows,
    format_strike,
    parse_instruments,
    quote_key,
)
from marketpulse.feeds.simulator import default_universe
from marketpulse.store.instruments import InstrumentRecord

HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange"
)
ROWS = """\
408065,1594,INFY,INFOSYS,0,,,0.05,1,EQ,NSE,NSE
500209,1954,INFY,INFOSYS,0,,,0.05,1,EQ,BSE,BSE
256265,1001,NIFTY 50,,0,,0,0,0,EQ,INDICES,NSE
260105,1016,NIFTY BANK,,0,,0,0,0,EQ,INDICES,NSE
264969,1035,INDIA VIX,,0,,0,0,0,EQ,INDICES,NSE
288009,1125,NIFTY MIDCAP 100,,0,,0,0,0,EQ,INDICES,NSE
265,1,SENSEX,,0,,0,0,0,EQ,INDICES,BSE
294409,1150,MCXCOMPDEX,,0,,0,0,0,EQ,INDICES,MCX
13238786,51714,NIFTY25DECFUT,NIFTY,0,2025-12-30,0,0.1,75,FUT,NFO-FUT,NFO
10679042,41715,NIFTY2511824500CE,NIFTY,0,2025-01-18,24500,0.05,75,CE,NFO-OPT,NFO
10679298,41716,M&M25JAN3000PE,M&M,0,2025-01-30,3000,0.05,350,PE,NFO-OPT,NFO
173315,677,USDINR25JAN83.25CE,USDINR,0,2025-01-31,83.25,0.0025,1,CE,CDS-OPT,CDS
109134855,426308,CRUDEOIL25JANFUT,CRUDEOIL,0,2025-01-20,0,1,100,FUT,MCX-FUT,MCX
9999,39,SGBDEC25,SGB 2017-18 SERIES III,0,,,0.01,1,EQ,NSE,NSEIX
12345,48,GOLDM25JANFUT,,0,2025-01-03,0,1,10,FUT,MCX-FUT,MCX
77,0,GARBAGE,,x,,,,,EQ,NSE,NSE
"""


def test_each_kind_of_row_gets_its_canonical_symbol() -> None:
    parsed = parse_instruments(f"{HEADER}\n{ROWS}")
    by_token = {r.token: r for r in parsed.records}
    assert {t: r.symbol for t, r in by_token.items()} == {
        "408065": "INFY.NSE",
        "500209": "INFY.BSE",
        "256265": "NIFTY50.NSE_INDEX",
        "260105": "NIFTYBANK.NSE_INDEX",
        "264969": "INDIAVIX.NSE_INDEX",
        "288009": "NIFTYMIDCAP100.NSE_INDEX",
        "265": "SENSEX.BSE_INDEX",
        "13238786": "NIFTY30DEC25FUT.NFO",
        "10679042": "NIFTY18JAN2524500CE.NFO",  # weekly contract: built from its parts
        "10679298": "M&M30JAN253000PE.NFO",
        "173315": "USDINR31JAN2583_25CE.CDS",
        "109134855": "CRUDEOIL20JAN25FUT.MCX",
    }
    assert parsed.skipped == {
        "index on exchange MCX": 1,
        "exchange NSEIX has no canonical code": 1,
        "derivative without underlying or expiry": 1,
        "unreadable row": 1,
    }
    assert "12 instruments, 4 rows skipped" in parsed.summary()


def test_records_keep_kites_names_and_contract_details() -> None:
    parsed = parse_instruments(f"{HEADER}\n{ROWS}")
    by_token = {r.token: r for r in parsed.records}
    assert by_token["408065"] == InstrumentRecord(
        "INFY.NSE", "NSE", "408065", "INFY", "INFOSYS", "EQ", 1, 0.05
    )
    assert by_token["256265"] == InstrumentRecord(
        "NIFTY50.NSE_INDEX", "NSE_INDEX", "256265", "NIFTY 50", "NIFTY 50", "INDEX", 0, 0.0
    )
    assert by_token["13238786"] == InstrumentRecord(
        "NIFTY30DEC25FUT.NFO", "NFO", "13238786", "NIFTY25DECFUT", "NIFTY", "FUT", 75, 0.1,
        expiry=date(2025, 12, 30),
    )  # fmt: skip
    assert by_token["173315"].strike == 83.25 and by_token["173315"].tick_size == 0.0025
    assert by_token["13238786"].strike is None


def test_a_share_named_like_an_index_is_not_turned_into_the_index() -> None:
    parsed = parse_instruments(f"{HEADER}\n1,1,SENSEX,A COMPANY,0,,,0.05,1,EQ,BSE,BSE\n")
    assert parsed.records == []
    assert parsed.skipped == {"BSE tradingsymbol without a canonical form": 1}


def test_a_file_that_is_not_the_dump_is_a_clear_error() -> None:
    with pytest.raises(InstrumentMasterError, match=r"missing column.*instrument_token"):
        parse_instruments("<html>maintenance</html>\n")


def test_the_emulator_dump_round_trips_and_maps_back_to_the_simulator_symbols() -> None:
    universe = default_universe(date(2025, 11, 20), extra_instruments=2)
    listing = KiteListing(universe)
    rows = [r for r in decode_rows(listing.csv()) if isinstance(r, KiteInstrument)]
    assert rows == [item.row for item in listing.listings]
    assert encode_rows(rows) == listing.csv()
    parsed = parse_instruments(listing.csv())
    assert not parsed.skipped
    assert {r.symbol: int(r.token) for r in parsed.records} == {
        item.spec.symbol: item.token for item in listing.listings
    }
    # The segment in the token's low byte is what the wire codec relies on.
    segments = {r.symbol: int(r.token) & 0xFF for r in parsed.records}
    assert segments["INFY.NSE"] == 1 and segments["SENSEX.BSE_INDEX"] == 9
    assert segments["NIFTY25NOV25FUT.NFO"] == 2


@pytest.mark.parametrize(
    ("strike", "text"), [(24500.0, "24500"), (83.25, "83_25"), (0.5, "0_5"), (1025.1, "1025_1")]
)
def test_strikes_are_written_without_a_dot(strike: float, text: str) -> None:
    assert format_strike(strike) == text


def test_quote_keys_use_kites_exchange_for_indices() -> None:
    assert quote_key("NSE_INDEX", "NIFTY 50") == "NSE:NIFTY 50"
    assert quote_key("BSE_INDEX", "SENSEX") == "BSE:SENSEX"
    assert quote_key("NFO", "NIFTY25DECFUT") == "NFO:NIFTY25DECFUT"

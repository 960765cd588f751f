"""Yahoo symbols ↔ canonical symbols (§A6), ``resolve`` without an instrument master, and the
chart parser on the spec's verified fixtures (§B4)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from marketpulse.config import Settings
from marketpulse.feeds.yahoo import rest
from marketpulse.feeds.yahoo.feed import SPEC, UnknownYahooSymbolError, resolve
from marketpulse.feeds.yahoo.symbols import from_yahoo, to_yahoo
from marketpulse.model import SymbolError
from marketpulse.subscriptions import TrackedSymbol

FIXTURES = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "yahoo" / "spec_vectors.json").read_text()
)
IST = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("yahoo", "code", "canonical"),
    [
        ("RELIANCE.NS", "NSI", ("RELIANCE.NSE", "NSE")),
        ("RELIANCE.BO", "BSE", ("RELIANCE.BSE", "BSE")),
        ("^NSEI", "NSI", ("NIFTY50.NSE_INDEX", "NSE_INDEX")),
        ("^BSESN", "BSE", ("SENSEX.BSE_INDEX", "BSE_INDEX")),
        ("^NSEBANK", "", ("NIFTYBANK.NSE_INDEX", "NSE_INDEX")),
        ("AAPL", "NMS", ("AAPL.NASDAQ", "NASDAQ")),
        ("IBM", "NYQ", ("IBM.NYSE", "NYSE")),
        ("BTC-USD", "", ("BTC-USD.CRYPTO", "CRYPTO")),
        ("USDINR=X", "CCY", ("USDINR.FX", "FX")),
        ("VOD.L", "LSE", ("VOD.LSE", "LSE")),
        ("BAJAJ-AUTO.NS", "NSI", ("BAJAJ-AUTO.NSE", "NSE")),
        ("M&M.NS", "NSI", ("M&M.NSE", "NSE")),
    ],
)
def test_yahoo_ids_map_to_canonical_symbols_and_back(
    yahoo: str, code: str, canonical: tuple[str, str]
) -> None:
    assert from_yahoo(yahoo, code) == canonical
    assert to_yahoo(canonical[0]) == yahoo


@pytest.mark.parametrize(("yahoo", "code"), [("^GSPC", "SNP"), ("AAPL", ""), ("ES=F", "CME")])
def test_ids_without_a_canonical_home_map_to_none(yahoo: str, code: str) -> None:
    assert from_yahoo(yahoo, code) is None


def test_exchanges_yahoo_does_not_stream_are_an_error_naming_the_ones_it_does() -> None:
    with pytest.raises(SymbolError, match="NFO, which Yahoo"):
        to_yahoo("NIFTY25DECFUT.NFO")


def test_resolve_takes_canonical_symbols_and_yahoo_ids_without_a_database() -> None:
    adapter = SPEC.build(_settings())
    got = resolve(adapter, ["RELIANCE.NSE", "^NSEI", "INFY.NS", "AAPL.NASDAQ", "BTC-USD"], "full")
    assert got == [
        TrackedSymbol("RELIANCE.NSE", "yahoo", "RELIANCE.NS", "NSE", "full"),
        TrackedSymbol("NIFTY50.NSE_INDEX", "yahoo", "^NSEI", "NSE_INDEX", "full"),
        TrackedSymbol("INFY.NSE", "yahoo", "INFY.NS", "NSE", "full"),
        TrackedSymbol("AAPL.NASDAQ", "yahoo", "AAPL", "NASDAQ", "full"),
        TrackedSymbol("BTC-USD.CRYPTO", "yahoo", "BTC-USD", "CRYPTO", "full"),
    ]


def test_resolve_names_every_symbol_it_cannot_place_with_the_forms_that_work() -> None:
    with pytest.raises(UnknownYahooSymbolError) as caught:
        resolve(SPEC.build(_settings()), ["AAPL", "RELIANCE.NSE", "X25DECFUT.NFO"], "quote")
    message = str(caught.value)
    assert "'AAPL'" in message and "AAPL.NASDAQ" in message and "NFO" in message
    assert "'RELIANCE.NSE'" not in message


def _settings() -> Settings:
    return Settings(_env_file=None)


# --------------------------------------------------------------------------- chart parsing


def _result(name: str) -> dict[str, object]:
    result: dict[str, object] = FIXTURES[name]["chart"]["result"][0]
    return result


def test_daily_fixture_gives_five_days_at_local_midnight_with_adjusted_close_and_events() -> None:
    chart = rest.parse_chart(_result("chart_daily_5d"), "RELIANCE.NSE", "1d")
    days = [date(2024, 7, d) for d in (9, 10, 11, 12, 15)]
    assert [c.start for c in chart.candles] == [datetime(d.year, d.month, d.day, tzinfo=IST)
                                                for d in days]  # fmt: skip
    first = chart.candles[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        3195.0, 3210.0, 3165.2, 3172.45, 5123456)  # fmt: skip
    assert [c.adj_close for c in chart.candles] == [3172.45, 3161.2, 3149.9, 3155.15, 3180.55]
    assert all(c.status == "reconciled" and c.interval == "1d" for c in chart.candles)
    assert [(d.date.date(), d.amount) for d in chart.dividends] == [(date(2024, 7, 11), 10.0)]
    assert [(s.date.date(), s.ratio) for s in chart.splits] == [(date(2024, 7, 15), 2.0)]


def test_intraday_fixture_drops_the_all_null_bar_and_keeps_utc_bar_starts() -> None:
    chart = rest.parse_chart(_result("chart_intraday_5m"), "RELIANCE.NSE", "5m")
    start = datetime(2024, 7, 15, 9, 15, tzinfo=IST)
    assert [c.start for c in chart.candles] == [start, start + timedelta(minutes=5),
                                                start + timedelta(minutes=15)]  # fmt: skip
    assert chart.skipped == 1 and all(c.adj_close is None for c in chart.candles)
    assert (chart.candles[2].close, chart.candles[2].volume) == (3175.0, 87650)


def test_a_repeated_live_day_keeps_the_later_bar() -> None:
    result = json.loads(json.dumps(_result("chart_daily_5d")))
    result["timestamp"].append(1721015100 + 7200)  # 2024-07-15 again, two hours later
    for column in result["indicators"]["quote"][0].values():
        column.append(column[-1] + 1)
    result["indicators"]["adjclose"][0]["adjclose"].append(3181.55)
    chart = rest.parse_chart(result, "RELIANCE.NSE", "1d")
    assert len(chart.candles) == 5 and chart.candles[-1].close == 3181.55


def test_quote_comes_from_meta_with_the_day_bars_open() -> None:
    instrument = TrackedSymbol("RELIANCE.NSE", "yahoo", "RELIANCE.NS", "NSE", "quote")
    tick = rest.quote_tick(_result("chart_daily_5d"), instrument)
    assert tick is not None
    assert (tick.ltp, tick.high, tick.low, tick.volume, tick.close) == (
        3180.55, 3189.9, 3151.2, 4567890, 3155.15)  # fmt: skip
    assert (tick.open, tick.high_52w, tick.low_52w) == (3160.0, 3217.9, 2220.3)
    assert tick.ts_exchange == 1721037600_000 and tick.mode == "quote"
    assert tick.change == pytest.approx(25.4) and tick.symbol == "RELIANCE.NSE"


def test_request_windows_respect_yahoos_per_request_limits() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    spans = list(rest.windows(start, start + timedelta(days=20), "1m"))
    assert [(b - a).days for a, b in spans] == [7, 7, 6]
    assert len(list(rest.windows(start, start + timedelta(days=400), "1d"))) == 1

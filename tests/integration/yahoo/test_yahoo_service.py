"""The Yahoo feed inside marketpulse: the running service, chart history with dividends, splits
and adjusted close, backfill into PostgreSQL, quotes, crumb and 429 handling, record/replay, and
yfinance's ``history()`` reading our chart emulator — against the emulator with real Redis and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from marketpulse.config import Settings
from marketpulse.emulators.yahoo import chart as emulated_chart
from marketpulse.feeds.history import HistoryRequest
from marketpulse.feeds.quotes import QuoteRateLimitedError
from marketpulse.feeds.registry import feed_spec
from marketpulse.feeds.yahoo.feed import SPEC
from marketpulse.feeds.yahoo.rest import parse_chart
from marketpulse.model import Candle, Tick
from marketpulse.store.backfill import BackfillPlan, create_job, run_backfill
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.kite.helpers import invoke_cli
from tests.integration.kite.test_kite_service import _eventually
from tests.integration.yahoo.helpers import RunningEmulator, yahoo_emulator
from tests.support.service import running_service

IST = ZoneInfo("Asia/Kolkata")
RELIANCE = TrackedSymbol("RELIANCE.NSE", "yahoo", "RELIANCE.NS", "NSE", "quote")


def _weekday_before(now: datetime, days: int) -> datetime:
    """Local midnight ``days`` back, moved to a Monday..Friday."""
    day = (now.astimezone(IST) - timedelta(days=days)).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=IST)


def _expected(yahoo: RunningEmulator, symbol: str, interval: str, start: datetime,
              end: datetime) -> list[Candle]:  # fmt: skip
    """What the emulator's generator says, parsed by the same pure parser."""
    emulator = yahoo.emulator
    now = datetime.fromtimestamp(emulator.options.clock(), UTC)
    params = {"period1": str(int(start.timestamp())), "period2": str(int(end.timestamp())),
              "interval": {"1h": "60m"}.get(interval, interval)}  # fmt: skip
    result = emulated_chart.chart_result(emulator, emulator.by_id[symbol.split("|")[0]], params,
                                         now)  # fmt: skip
    return parse_chart(result, RELIANCE.symbol, interval).candles


async def test_the_service_streams_yahoo_ticks_to_the_quotes_api(settings: Settings) -> None:
    symbols = ["RELIANCE.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX", "AAPL.NASDAQ"]
    async with yahoo_emulator(rate=200) as yahoo:
        configured = yahoo.configure(settings, ["RELIANCE.NS", "^NSEI", "^BSESN", "AAPL.NASDAQ"])
        assert feed_spec("yahoo") is SPEC
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            url = f"{endpoints.http}/api/quotes?symbols={','.join(symbols)}"
            body = await _eventually(lambda: http.get(url), lambda b: not b["missing"])
            listed = (await http.get(f"{endpoints.http}/symbols")).json()
    quotes = body["quotes"]
    assert {s: q["source"] for s, q in quotes.items()} == dict.fromkeys(symbols, "yahoo")
    assert quotes["SENSEX.BSE_INDEX"]["exchange"] == "BSE_INDEX"
    assert quotes["AAPL.NASDAQ"]["token"] == "AAPL" and quotes["RELIANCE.NSE"]["close"]
    assert "RELIANCE.NSE" in json.dumps(listed)


async def test_daily_history_has_adjusted_close_and_the_emulators_dividends(
    settings: Settings,
) -> None:
    async with yahoo_emulator() as yahoo:
        configured = yahoo.configure(settings)
        now = datetime.fromtimestamp(yahoo.emulator.options.clock(), UTC)
        start, end = _weekday_before(now, 150), _weekday_before(now, 2)
        assert SPEC.history is not None
        daily = [c async for page in SPEC.history(configured, HistoryRequest(
            RELIANCE, "1d", start, end)) for c in page]  # fmt: skip
        expected = _expected(yahoo, "RELIANCE.NS", "1d", start, end)
        item = yahoo.emulator.by_id["RELIANCE.NS"]
        paid = [d for d in (start.date() + timedelta(n) for n in range((end - start).days))
                if emulated_chart.dividend(yahoo.emulator, item, d)]  # fmt: skip
        request = yahoo.emulator.chart_requests[-1]
    assert daily == expected and len(daily) > 90
    assert daily[0].start == start and all(c.start.tzinfo == IST for c in daily)
    assert paid, "the range should hold at least one emulated dividend"
    before = [c for c in daily if c.start.date() < paid[-1]]
    assert all(c.adj_close is not None and c.adj_close < c.close for c in before)
    assert daily[-1].adj_close == daily[-1].close or daily[-1].start.date() >= paid[-1]
    assert "events=div%2Csplits%2CcapitalGains" in request and "crumb=emulated-crumb" in request


async def test_intraday_history_is_the_emulators_bars_with_utc_starts(settings: Settings) -> None:
    async with yahoo_emulator() as yahoo:
        configured = yahoo.configure(settings)
        now = datetime.fromtimestamp(yahoo.emulator.options.clock(), UTC)
        start = _weekday_before(now, 3)
        end = start + timedelta(days=1)
        assert SPEC.history is not None
        pages = [page async for page in SPEC.history(configured, HistoryRequest(
            RELIANCE, "5m", start, end))]  # fmt: skip
        expected = _expected(yahoo, "RELIANCE.NS", "5m", start, end)
    minutes = [c for page in pages for c in page]
    assert minutes == expected and len(minutes) == 75
    assert minutes[0].start == start.replace(hour=9, minute=15)
    assert minutes[1].start - minutes[0].start == timedelta(minutes=5)
    assert all(c.adj_close is None and c.status == "reconciled" for c in minutes)


async def test_splits_and_dividends_come_through_the_chart_events(settings: Settings) -> None:
    async with yahoo_emulator() as yahoo:
        emulator = yahoo.emulator
        now = datetime.fromtimestamp(emulator.options.clock(), UTC)
        item = emulator.by_id["RELIANCE.NS"]
        day = now.astimezone(IST).date() - timedelta(days=2)
        while emulated_chart.split(item, day) is None:
            day -= timedelta(days=1)
        start = datetime(day.year, day.month, day.day, tzinfo=IST) - timedelta(days=90)
        end = datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(days=1)
        async with yahoo.rest() as client:
            chart = parse_chart(await client.history("RELIANCE.NS", "1d", start, end),
                                "RELIANCE.NSE", "1d")  # fmt: skip
    assert [(s.date.date(), s.numerator, s.denominator) for s in chart.splits] == [(day, 2.0, 1.0)]
    assert chart.dividends and all(d.amount == round(item.spec.close * 0.004, 2)
                                   for d in chart.dividends)  # fmt: skip


async def test_backfill_stores_daily_candles_with_adjusted_close(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with yahoo_emulator() as yahoo:
        configured = yahoo.configure(settings)
        now = datetime.fromtimestamp(yahoo.emulator.options.clock(), UTC)
        start, end = _weekday_before(now, 40), _weekday_before(now, 2)
        plan = BackfillPlan("yahoo", ("RELIANCE.NSE",), "1d", start, end)
        plan.validate(configured)
        # No targets given: the symbols resolve as `marketpulse backfill` resolves them, through
        # the feed's own resolve (Yahoo has no instrument master).
        state = await run_backfill(pool, configured, await create_job(pool, plan))
        expected = _expected(yahoo, "RELIANCE.NS", "1d", start, end)
    rows = await pool.fetch("SELECT date, close, adj_close, source FROM price_history_daily "
                            "WHERE symbol = 'RELIANCE.NSE' ORDER BY date")  # fmt: skip
    assert state.status == "done" and state.candles == len(expected) == len(rows)
    assert [(r["date"], r["close"], r["adj_close"]) for r in rows] == [
        (c.start.date(), c.close, c.adj_close) for c in expected]  # fmt: skip
    assert {r["source"] for r in rows} == {"yahoo"}


async def test_quotes_come_from_chart_meta_and_unknown_symbols_are_left_out(
    settings: Settings,
) -> None:
    async with yahoo_emulator() as yahoo:
        configured = yahoo.configure(settings)
        pushed = Tick(source="yahoo", token="RELIANCE.NS", exchange="NSE", mode="quote",
                      ltp=1550.25, volume=123_456, open=1540.0, high=1555.5, low=1535.05,
                      close=1545.0, ts_exchange=1_795_000_000_000)  # fmt: skip
        yahoo.emulator.push([pushed])
        unknown = TrackedSymbol("NOSUCH.NSE", "yahoo", "NOSUCH.NS", "NSE", "quote")
        assert SPEC.quotes is not None
        ticks = await SPEC.quotes(configured, [RELIANCE, unknown])
    assert len(ticks) == 1
    tick = ticks[0]
    assert (tick.symbol, tick.token, tick.ltp, tick.volume, tick.high, tick.low, tick.close) == (
        "RELIANCE.NSE", "RELIANCE.NS", 1550.25, 123_456, 1555.5, 1535.05, 1545.0)  # fmt: skip
    assert tick.ts_exchange == 1_795_000_000_000 and tick.change == pytest.approx(5.25)


async def test_a_429_is_retried_and_a_lasting_one_is_a_rate_limit_error() -> None:
    async with yahoo_emulator() as yahoo:
        yahoo.emulator.rate_limit_next = 1
        async with yahoo.rest(base_delay=0.01) as client:
            day = await client.day("RELIANCE.NS")
        yahoo.emulator.rate_limit_next = 10
        async with yahoo.rest(base_delay=0.01, attempts=2) as client:
            with pytest.raises(QuoteRateLimitedError, match="rate limited"):
                await client.day("RELIANCE.NS")
    assert day["meta"]["symbol"] == "RELIANCE.NS"


async def test_a_rejected_crumb_is_fetched_again_and_the_request_repeated_once() -> None:
    async with yahoo_emulator(require_crumb=True) as yahoo:
        async with yahoo.rest() as client:
            await client.day("^NSEI")
            yahoo.emulator.crumb = "rotated-crumb"
            answer = await client.day("^NSEI")
            crumb = client.crumb
        async with yahoo.rest(cookie_url="") as cookieless:
            assert await cookieless.refresh_crumb() is None  # no cookie, no crumb
    assert answer["meta"]["symbol"] == "^NSEI" and crumb == "rotated-crumb"
    assert yahoo.emulator.crumb_requests == 3


async def test_history_pages_and_quote_refreshes_share_one_cookie_and_crumb(
    settings: Settings,
) -> None:
    """Each history request and quote refresh builds its own client; the crumb endpoint, which
    Yahoo rate-limits, is still asked once per process, not once per call."""
    async with yahoo_emulator(require_crumb=True) as yahoo:
        configured = yahoo.configure(settings)
        end = datetime.now(UTC)
        request = HistoryRequest(RELIANCE, "1d", end - timedelta(days=20), end)
        for _ in range(3):
            assert [c async for page in SPEC.history(configured, request) for c in page]
        assert yahoo.emulator.crumb_requests == 1


async def test_recorded_raw_frames_replay_to_the_same_ticks(tmp_path: Path) -> None:
    out, raw, again = tmp_path / "t.jsonl", tmp_path / "f.raw", tmp_path / "a.jsonl"
    async with yahoo_emulator(rate=400) as yahoo:
        env: dict[str, str | None] = {"MARKETPULSE_HOME": str(tmp_path),
                                      "YAHOO_WS_URL": yahoo.ws_url}  # fmt: skip
        recorded = await invoke_cli(["record", "--feed", "yahoo", "--tokens", "RELIANCE.NS,^NSEI",
                                     "--mode", "quote", "--duration", "1.5", "--out", str(out),
                                     "--raw", str(raw)], env)  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = await invoke_cli(["replay", str(raw), "--feed", "yahoo", "--out", str(again)], env)
    assert replay.exit_code == 0, replay.output
    first, second = out.read_text().splitlines(), again.read_text().splitlines()
    assert len(first) > 10 and second[: len(first)] == first
    assert {json.loads(line)["symbol"] for line in first} == {"RELIANCE.NSE", "NIFTY50.NSE_INDEX"}


YFINANCE_SCRIPT = """
import json, sys, tempfile, logging
import yfinance as yf
import yfinance.base, yfinance.scrapers.history
logging.getLogger("yfinance").setLevel(logging.CRITICAL)
base = sys.argv[1]
yfinance.scrapers.history._BASE_URL_ = base
yfinance.base._BASE_URL_ = base
data = yf.data.YfData()
data._cookie, data._crumb = True, "emulated-crumb"
yf.set_tz_cache_location(tempfile.mkdtemp())
yf.cache.get_tz_cache().store("RELIANCE.NS", "Asia/Kolkata")
frame = yf.Ticker("RELIANCE.NS").history(start=sys.argv[2], end=sys.argv[3], interval="1d",
                                         auto_adjust=False, actions=True)
rows = [[str(i.date()), r["Open"], r["High"], r["Low"], r["Close"], r["Adj Close"],
         int(r["Volume"]), r["Dividends"], r["Stock Splits"]] for i, r in frame.iterrows()]
print(json.dumps(rows))
"""


async def test_yfinance_history_reads_our_chart_emulator_like_our_client(
    settings: Settings,
) -> None:
    pytest.importorskip("yfinance")
    async with yahoo_emulator() as yahoo:
        emulator = yahoo.emulator
        now = datetime.fromtimestamp(emulator.options.clock(), UTC)
        item = emulator.by_id["RELIANCE.NS"]
        day = now.astimezone(IST).date() - timedelta(days=3)
        while emulated_chart.dividend(emulator, item, day) is None:
            day -= timedelta(days=1)
        start = datetime(day.year, day.month, day.day, tzinfo=IST) - timedelta(days=10)
        end = datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(days=3)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", YFINANCE_SCRIPT, yahoo.base, start.date().isoformat(),
            end.date().isoformat(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert SPEC.history is not None
        ours = [c async for page in SPEC.history(yahoo.configure(settings), HistoryRequest(
            RELIANCE, "1d", start, end)) for c in page]  # fmt: skip
        requests = list(emulator.chart_requests)
    assert process.returncode == 0, err.decode()[-2000:]
    rows = json.loads(out.decode().strip().splitlines()[-1])
    dividend = emulated_chart.dividend(emulator, item, day)
    assert [r[0] for r in rows] == [c.start.date().isoformat() for c in ours]
    assert [r[1:5] for r in rows] == [[c.open, c.high, c.low, c.close] for c in ours]
    assert [r[5] for r in rows] == pytest.approx([c.adj_close for c in ours])
    assert [r[6] for r in rows] == [c.volume for c in ours]
    assert [(r[0], r[7]) for r in rows if r[7]] == [(day.isoformat(), dividend)]
    assert any("/v8/finance/chart/RELIANCE.NS?period1=" in r for r in requests)

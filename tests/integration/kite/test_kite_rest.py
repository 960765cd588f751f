"""Our Kite REST client against the emulator's REST API: quotes, candles, dump, failures."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from marketpulse.feeds.base import FeedAuthError, FeedConnectionError
from marketpulse.feeds.kite.credentials import KiteCredentials
from marketpulse.feeds.kite.instruments import parse_instruments
from marketpulse.feeds.kite.rest import HISTORICAL_INTERVALS, KiteApiError, KiteRestClient
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import DepthLevel, Tick
from tests.integration.kite.helpers import CREDENTIALS, RunningEmulator, kite_emulator

FAST_RATES = {"quote": 200.0, "historical": 200.0, "default": 200.0}


def client(kite: RunningEmulator, credentials: KiteCredentials | None = CREDENTIALS,
           **options: object) -> KiteRestClient:  # fmt: skip
    options.setdefault("rates", FAST_RATES)
    options.setdefault("backoff", 0.01)
    return KiteRestClient(kite.api_url, credentials, **options)  # type: ignore[arg-type]


async def test_quotes_carry_the_latest_market_state_and_omit_unknown_instruments() -> None:
    async with kite_emulator() as kite, client(kite) as rest:
        infy = kite.token("NSE:INFY")
        kite.emulator.push([Tick(
            source="kite", token=str(infy), exchange="NSE", mode="full", ltp=1525.5, ltq=10,
            atp=1523.25, volume=1_234_567, total_buy_qty=50_000, total_sell_qty=60_000,
            open=1510.0, high=1530.0, low=1505.5, close=1512.35, ts_exchange=1_705_293_930_000,
            ts_last_trade=1_705_293_925_000, bids=[DepthLevel(1525.45, 75, 3)],
            asks=[DepthLevel(1525.55, 50, 2)],
        )])  # fmt: skip
        quotes = await rest.quote(["NSE:INFY", "NSE:NIFTY 50", "NSE:NO-SUCH-SHARE"])
        ltp = await rest.ltp(["NSE:INFY"])
        ohlc = await rest.ohlc(["NSE:INFY"])
    assert set(quotes) == {"NSE:INFY", "NSE:NIFTY 50"}
    tick = quotes["NSE:INFY"].to_tick(ts_recv=1, symbol="INFY.NSE")
    assert (tick.token, tick.exchange, tick.symbol, tick.ltp, tick.volume) == (
        str(infy), "NSE", "INFY.NSE", 1525.5, 1_234_567
    )  # fmt: skip
    assert (tick.ts_exchange, tick.ts_last_trade) == (1_705_293_930_000, 1_705_293_925_000)
    assert (tick.bids, tick.asks) == ([DepthLevel(1525.45, 75, 3)], [DepthLevel(1525.55, 50, 2)])
    assert (tick.upper_circuit, tick.lower_circuit) == (1663.6, 1361.1)
    assert ltp["NSE:INFY"].last_price == ohlc["NSE:INFY"].last_price == 1525.5
    assert ohlc["NSE:INFY"].ohlc.close == 1512.35


async def test_quote_requests_are_split_at_kites_per_request_limits() -> None:
    async with kite_emulator(extra_instruments=1001) as kite, client(kite) as rest:
        keys = [item.key for item in kite.emulator.listing.listings]
        prices = await rest.ltp(keys)
        requests = [r for r in kite.emulator.rest_requests if r.startswith("GET /quote/ltp")]
    assert len(keys) > 1000 and len(prices) == len(keys)
    assert len(requests) == 2


async def test_long_candle_ranges_are_fetched_in_chunks_without_gaps_or_repeats() -> None:
    async with kite_emulator() as kite, client(kite) as rest:
        token = kite.token("NSE:INFY")
        start, end = datetime(2024, 1, 1, 9, 0), datetime(2024, 4, 30, 16, 0)  # 121 days
        minutes = await rest.historical(token, "minute", start, end)
        fives = await rest.historical(token, "5minute", start, end)
        days = await rest.historical(token, "day", start, end)
        calls = [r for r in kite.emulator.rest_requests if "/historical/" in r]
    assert [c.split("/")[4].split("?")[0] for c in calls] == ["minute"] * 3 + ["5minute"] * 2 + [
        "day"
    ]
    weekdays = sum(1 for d in range(121) if (datetime(2024, 1, 1) + timedelta(d)).weekday() < 5)
    assert len(days) == weekdays and len(minutes) == 375 * weekdays == 5 * len(fives)
    assert len({c.start for c in minutes}) == len(minutes)
    assert minutes[0].start == datetime(2024, 1, 1, 9, 15, tzinfo=IST)
    # Coarser candles are exactly the aggregate of the finer ones.
    first_five = minutes[:5]
    assert (fives[0].open, fives[0].close, fives[0].volume) == (
        first_five[0].open, first_five[-1].close, sum(c.volume for c in first_five)
    )  # fmt: skip
    assert fives[0].high == max(c.high for c in first_five)
    assert days[0].volume == sum(c.volume for c in minutes[:375])


async def test_every_kite_interval_is_served_and_futures_carry_open_interest() -> None:
    async with kite_emulator() as kite, client(kite) as rest:
        future = next(i for i in kite.emulator.listing.listings if i.row.segment == "NFO-FUT")
        day = datetime(2024, 1, 15, 9, 15)
        for interval in HISTORICAL_INTERVALS:
            candles = await rest.historical(
                future.token, interval, day, day.replace(hour=15, minute=0)
            )
            assert candles, interval
        with_oi = await rest.historical(future.token, "60minute", day,
                                        day.replace(hour=15, minute=0), oi=True)  # fmt: skip
    assert [c.start.hour for c in with_oi] == [9, 10, 11, 12, 13, 14]
    assert all(c.oi is not None and c.oi > 0 for c in with_oi)


async def test_rate_limits_and_server_errors_are_retried_with_backoff() -> None:
    async with kite_emulator() as kite, client(kite) as rest:
        kite.emulator.rest_faults.extend([429, 503, 500])
        quotes = await rest.ltp(["NSE:INFY"])
        kite.emulator.rest_faults.extend([429] * 10)
        with pytest.raises(KiteApiError, match=r"HTTP 429 \(NetworkException\): injected fault"):
            await rest.ltp(["NSE:INFY"])
    assert "NSE:INFY" in quotes
    assert len([r for r in kite.emulator.rest_requests if r.startswith("GET /quote")]) == 4 + 5


async def test_a_refused_token_is_an_auth_error_and_bad_input_is_an_api_error() -> None:
    async with kite_emulator() as kite:
        async with client(kite, KiteCredentials("test_api_key", "expired")) as rest:
            with pytest.raises(FeedAuthError, match=r"TokenException.*marketpulse login kite"):
                await rest.quote(["NSE:INFY"])
        async with client(kite) as rest:
            with pytest.raises(KiteApiError, match=r"InputException.*Invalid token") as info:
                await rest.historical(1, "day", datetime(2024, 1, 1), datetime(2024, 1, 2))
    assert info.value.status == 400
    async with KiteRestClient("http://127.0.0.1:9", CREDENTIALS) as offline:
        with pytest.raises(ValueError, match="unknown Kite candle interval 'week'"):
            await offline.historical(1, "week", datetime(2024, 1, 1), datetime(2024, 1, 2))


async def test_an_unreachable_api_is_a_connection_error_after_retries() -> None:
    async with KiteRestClient(
        "http://127.0.0.1:9", CREDENTIALS, retries=1, backoff=0.01, rates=FAST_RATES
    ) as rest:
        with pytest.raises(FeedConnectionError, match=r"cannot reach http://127\.0\.0\.1:9/quote"):
            await rest.quote(["NSE:INFY"])


async def test_the_instrument_dump_downloads_without_a_session_and_reports_progress() -> None:
    progress: list[tuple[int, int]] = []
    async with kite_emulator() as kite, client(kite, None) as rest:
        text = await rest.instruments(progress=lambda done, total: progress.append((done, total)))
        nse = await rest.instruments("NSE")
    parsed = parse_instruments(text)
    assert len(parsed.records) == len(kite.emulator.listing.listings) and not parsed.skipped
    assert progress and progress[-1][0] > 0
    assert {r.exchange for r in parse_instruments(nse).records} == {"NSE", "NSE_INDEX"}

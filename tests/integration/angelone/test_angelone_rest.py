"""SmartAPI REST against the emulator: login, quotes, candle history, limits, retries, auth."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pyotp
import pytest

from marketpulse.emulators.angelone import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_JWT,
    TEST_PIN,
    TEST_TOTP_SECRET,
)
from marketpulse.emulators.angelone.rest import RestLimits
from marketpulse.feeds.angelone import auth
from marketpulse.feeds.angelone.market_data import Interval
from marketpulse.feeds.angelone.rest import (
    CANDLE_PATH,
    QUOTE_PATH,
    Limits,
    RateLimitedError,
    RetryPolicy,
    SmartApiClient,
)
from marketpulse.feeds.base import FeedAuthError
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import DepthLevel, Mode, Tick
from tests.integration.angelone.support import Running, emulator

QUICK_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
TS = 1_705_293_930_000  # whole seconds: the quote API's feed times have no milliseconds


def client(running: Running, jwt: str | None = TEST_JWT, **kwargs: object) -> SmartApiClient:
    kwargs.setdefault("retry", QUICK_RETRY)
    return SmartApiClient(running.api_url, TEST_API_KEY, jwt=jwt, **kwargs)  # type: ignore[arg-type]


async def test_login_with_pin_and_totp_then_refresh_gives_working_sessions() -> None:
    async with emulator() as running, client(running, jwt=None) as anonymous:
        tokens = await auth.login(anonymous, TEST_CLIENT_CODE, TEST_PIN,
                                  pyotp.TOTP(TEST_TOTP_SECRET).now())  # fmt: skip
        assert tokens.jwt_token and tokens.feed_token and tokens.refresh_token
        async with client(running, jwt=tokens.jwt_token) as logged_in:
            renewed = await auth.refresh(logged_in, tokens.refresh_token)
            assert renewed.jwt_token != tokens.jwt_token
            with pytest.raises(auth.LoginError, match=r"AB8050.*without --refresh"):
                await auth.refresh(logged_in, tokens.refresh_token)  # used up
        async with client(running, jwt=renewed.jwt_token) as fresh:
            ticks, _ = await fresh.quotes([("NSE", running.token("INFY.NSE"))], Mode.LTP)
            assert len(ticks) == 1


@pytest.mark.parametrize(
    ("pin", "totp", "message"),
    [("0000", None, r"AB1007.*check the client code and PIN"),
     (TEST_PIN, "000000", r"AB1050.*TOTP secret")],
)  # fmt: skip
async def test_refused_logins_say_what_to_check(pin: str, totp: str | None, message: str) -> None:
    async with emulator() as running, client(running, jwt=None) as anonymous:
        code = totp or pyotp.TOTP(TEST_TOTP_SECRET).now()
        with pytest.raises(auth.LoginError, match=message):
            await auth.login(anonymous, TEST_CLIENT_CODE, pin, code)


async def test_quotes_in_every_mode_match_the_last_streamed_tick() -> None:
    async with emulator() as running, client(running) as api:
        reliance, nifty = running.token("RELIANCE.NSE"), running.token("NIFTY50.NSE_INDEX")
        tick = Tick(
            "script", reliance, "NSE", "full", 2500.75, ltq=15, atp=2498.1, volume=3_456_789,
            total_buy_qty=125_000, total_sell_qty=98_000, open=2480.0, high=2515.0, low=2475.5,
            close=2470.0, oi=0, upper_circuit=2717.0, lower_circuit=2223.0, high_52w=2600.0,
            low_52w=1900.0, ts_exchange=TS, ts_last_trade=TS - 5000,
            bids=[DepthLevel(2500.7, 75, 1)], asks=[DepthLevel(2500.8, 50, 2)],
        )  # fmt: skip
        running.emulator.push([tick])
        wanted = [("NSE", reliance), ("NSE_INDEX", nifty)]
        (full, index), missing = await api.quotes(wanted, Mode.FULL)
        assert missing == []
        assert (full.ltp, full.ltq, full.atp, full.volume, full.oi) == (2500.75, 15, 2498.1,
                                                                        3_456_789, 0)  # fmt: skip
        assert (full.open, full.high, full.low, full.close) == (2480.0, 2515.0, 2475.5, 2470.0)
        assert (full.upper_circuit, full.lower_circuit, full.high_52w, full.low_52w) == (
            2717.0, 2223.0, 2600.0, 1900.0)  # fmt: skip
        assert (full.ts_exchange, full.ts_last_trade) == (TS, TS - 5000)
        assert (full.bids, full.asks) == ([DepthLevel(2500.7, 75, 1)], [DepthLevel(2500.8, 50, 2)])
        assert (full.source, full.mode, full.exchange) == ("angelone", "full", "NSE")
        assert (index.exchange, index.token) == ("NSE_INDEX", nifty)  # segment restored
        (ltp,), _ = await api.quotes([("NSE", reliance)], Mode.LTP)
        assert (ltp.ltp, ltp.close, ltp.mode) == (2500.75, None, "ltp")
        (ohlc,), _ = await api.quotes([("NSE", reliance)], Mode.QUOTE)
        assert (ohlc.open, ohlc.close, ohlc.volume, ohlc.mode) == (2480.0, 2470.0, None, "quote")


async def test_quotes_are_split_into_requests_of_fifty_and_unknown_tokens_reported() -> None:
    async with emulator(rest_limits=RestLimits(quote_per_second=100)) as running:
        async with client(running, limits=Limits(quote_per_second=100)) as api:
            tokens = [("NSE", spec.token) for spec in running.emulator.universe.specs
                      if spec.instrument.exchange.value == "NSE"][:50]  # fmt: skip
            ticks, missing = await api.quotes([*tokens, ("NSE", "1"), ("NFO", "2")], Mode.LTP)
        assert len(ticks) == 50
        assert {(m.exchange, m.token) for m in missing} == {("NSE", "1"), ("NFO", "2")}
        assert running.emulator.rest.calls[QUOTE_PATH] == 2


async def test_history_is_fetched_in_windows_within_each_intervals_limit() -> None:
    limits = RestLimits(history_per_second=100)
    async with emulator(rest_limits=limits) as running:
        async with client(running, limits=Limits(history_per_second=100)) as api:
            token = running.token("RELIANCE.NSE")
            end = datetime(2024, 3, 1, 15, 30, tzinfo=IST)
            start = end - timedelta(days=45)
            minutes = await api.candles("NSE", token, "1m", start, end, symbol="RELIANCE.NSE")
            assert running.emulator.rest.calls[CANDLE_PATH] == 2  # 30 + 15 days
            starts = [c.start for c in minutes]
            assert starts == sorted(set(starts))  # no duplicates at the window boundary
            assert len(minutes) == 375 * 33  # the weekdays after 16 Jan 15:30 up to 1 Mar
            fives = await api.candles("NSE", token, Interval.FIVE_MINUTE, start, end)
            assert running.emulator.rest.calls[CANDLE_PATH] == 3
        first_five = minutes[:5]
        assert fives[0].start == first_five[0].start
        assert (fives[0].open, fives[0].close) == (first_five[0].open, first_five[-1].close)
        assert fives[0].high == max(c.high for c in first_five)
        assert fives[0].volume == sum(c.volume for c in first_five)
        assert fives[0].symbol == f"angelone:{token}"
        assert {c.status for c in minutes} == {"closed"}


async def test_rate_limits_and_server_errors_are_retried_with_backoff() -> None:
    async with emulator() as running, client(running) as api:
        faults = running.emulator.rest.faults
        faults.rate_limit_next(2)
        faults.fail_next(1, 503)
        ticks, _ = await api.quotes([("NSE", running.token("TCS.NSE"))], Mode.LTP)
        assert len(ticks) == 1
        assert api.retries == 3
        assert sum(running.emulator.rest.refused.values()) == 3
        faults.rate_limit_next(10)
        with pytest.raises(RateLimitedError, match="rate limited"):
            await api.quotes([("NSE", running.token("TCS.NSE"))], Mode.LTP)


async def test_the_emulators_own_rate_limit_is_absorbed_by_the_clients_retries() -> None:
    async with emulator(rest_limits=RestLimits(history_per_second=1)) as running:
        fast = Limits(history_per_second=1000)
        retry = RetryPolicy(attempts=8, base_delay=0.2, max_delay=1.0)
        async with client(running, limits=fast, retry=retry) as api:
            token = running.token("RELIANCE.NSE")
            end = datetime(2024, 3, 1, 15, 30, tzinfo=IST)
            days = await api.candles("NSE", token, "1d", end - timedelta(days=4100), end)
        assert running.emulator.rest.calls[CANDLE_PATH] >= 3  # three windows of ≤ 2000 days
        assert len(days) > 2000


async def test_rejected_and_expired_sessions_are_auth_errors() -> None:
    async with emulator(expire_token_after=0.5) as running:
        async with client(running, jwt="not-a-session") as bad:
            with pytest.raises(FeedAuthError, match=r"Invalid Token \(AG8001\).*login angelone"):
                await bad.quotes([("NSE", running.token("TCS.NSE"))], Mode.LTP)
        await asyncio.sleep(0.6)  # let the fixed session reach its scripted expiry
        async with client(running) as expired:
            with pytest.raises(FeedAuthError, match=r"Token Expired \(AG8002\)"):
                await expired.candles("NSE", running.token("TCS.NSE"), "1d",
                                      datetime(2024, 1, 1, tzinfo=IST),
                                      datetime(2024, 1, 5, tzinfo=IST))  # fmt: skip

"""Our Fyers client against the emulator over real sockets: exact values, reconnects, errors,
limits and pooling."""

from __future__ import annotations

import asyncio

import pytest

from marketpulse.feeds.base import FeedAuthError, FeedSupervisor
from marketpulse.feeds.fyers import wire
from marketpulse.model import DepthLevel, Tick
from tests.integration.fyers.helpers import (
    FAST,
    Collector,
    access_token,
    fyers_emulator,
    session_env,
    stop,
    wait_for,
)

SBIN, NIFTY = "NSE:SBIN-EQ", "NSE:NIFTY50-INDEX"


def _tick(ltp: float, volume: int, **extra: object) -> Tick:
    fields: dict[object, object] = {
        "source": "fyers", "token": SBIN, "exchange": "NSE", "mode": "full", "ltp": ltp,
        "ltq": 5, "atp": 600.25, "volume": volume, "total_buy_qty": 1000,
        "total_sell_qty": 1200, "open": 598.0, "high": 615.0, "low": 597.5, "close": 600.0,
        "ts_exchange": 1_765_000_000_000, "ts_last_trade": 1_765_000_000_000,
        "bids": [DepthLevel(ltp - 0.05 * (i + 1), 10 * (i + 1), i + 1) for i in range(5)],
        "asks": [DepthLevel(ltp + 0.05 * (i + 1), 20 * (i + 1), i + 2) for i in range(5)],
    }  # fmt: skip
    fields.update(extra)
    return Tick(**fields)  # type: ignore[arg-type]


async def test_pushed_ticks_arrive_with_exact_values_after_snapshot_and_updates() -> None:
    async with fyers_emulator() as fy:
        sink = Collector()
        supervisor = FeedSupervisor(fy.adapter(), sink, FAST)
        await supervisor.subscribe([SBIN], "full")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: supervisor.connected and fy.emulator.history[0].topics)
        await wait_for(lambda: sink.ticks)  # the subscribe snapshot of the seeded quote
        sink.ticks.clear()
        fy.emulator.push([_tick(612.35, 1000)])
        fy.emulator.push([_tick(612.5, 1100, ts_exchange=1_765_000_001_000)])
        await wait_for(lambda: len(sink.ticks) >= 2)
        await stop(task)
        source = fy.emulator.history[0].source
    last = sink.ticks[-1]
    assert source == "marketpulse"
    assert (last.ltp, last.volume, last.close, last.open, last.ts_exchange) == (
        612.5, 1100, 600.0, 598.0, 1_765_000_001_000
    )  # fmt: skip
    assert last.bids is not None and [(b.price, b.qty, b.orders) for b in last.bids] == [
        (round(612.5 - 0.05 * (i + 1), 2), 10 * (i + 1), i + 1) for i in range(5)
    ]
    assert last.change == pytest.approx(12.5) and last.token == SBIN and last.mode == "full"


async def test_quote_and_index_subscriptions_and_acknowledgements() -> None:
    async with fyers_emulator(rate=400, ack_count=3) as fy:
        sink = Collector()
        supervisor = FeedSupervisor(fy.adapter(), sink, FAST)
        await supervisor.subscribe([SBIN, NIFTY], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: {t.token for t in sink.ticks} == {SBIN, NIFTY})
        await wait_for(lambda: len(fy.emulator.history[0].acks) >= 2)
        await stop(task)
        log = fy.emulator.history[0]
    assert log.topics == [f"sf|nse_cm|{fy.emulator.listing.by_symbol[SBIN].spec.token}",
                          "if|nse_cm|Nifty 50"]  # fmt: skip
    assert log.acks[:2] == [3, 6]
    assert {t.mode for t in sink.ticks} == {"quote"} and all(t.bids is None for t in sink.ticks)
    assert {t.exchange for t in sink.ticks if t.token == NIFTY} == {"NSE_INDEX"}


async def test_lite_mode_streams_ltp_only() -> None:
    async with fyers_emulator(rate=300) as fy:
        sink = Collector()
        supervisor = FeedSupervisor(fy.adapter(lite=True), sink, FAST)
        await supervisor.subscribe([SBIN], "full")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: len(sink.ticks) >= 3)
        await stop(task)
        lite = fy.emulator.history[0].lite_channels
    assert lite == {11} and {t.mode for t in sink.ticks} == {"ltp"}
    assert all(t.volume is None for t in sink.ticks)


async def test_a_dropped_connection_reconnects_and_resubscribes() -> None:
    async with fyers_emulator(rate=300, drop_every=0.6) as fy:
        sink = Collector()
        supervisor = FeedSupervisor(fy.adapter(), sink, FAST)
        await supervisor.subscribe([SBIN, NIFTY], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: len(fy.emulator.history) >= 3 and fy.emulator.history[2].topics)
        count = len(sink.ticks)
        await wait_for(lambda: len(sink.ticks) > count)
        await stop(task)
    assert supervisor.statuses[0].reconnects >= 2
    assert all(len(log.topics) == 2 for log in fy.emulator.history[:3])


async def test_a_rejected_hsm_key_stops_the_feed_with_the_login_hint() -> None:
    async with fyers_emulator() as fy:
        adapter = fy.adapter(env=session_env(access_token(hsm_key="wrong")))
        supervisor = FeedSupervisor(adapter, Collector(), FAST)
        await supervisor.subscribe([SBIN], "quote")
        with pytest.raises(FeedAuthError, match="marketpulse login fyers"):
            await asyncio.wait_for(supervisor.run(), 10)


async def test_an_expired_token_is_refused_before_connecting() -> None:
    async with fyers_emulator() as fy:
        adapter = fy.adapter(env=session_env(access_token(expires_in=-60)))
        with pytest.raises(FeedAuthError, match="expired"):
            await asyncio.wait_for(FeedSupervisor(adapter, Collector(), FAST).run(), 10)
        assert fy.emulator.history == []


async def test_the_token_expiry_fault_ends_the_feed_with_an_auth_error() -> None:
    async with fyers_emulator(rate=100, expire_token_after=0.5) as fy:
        supervisor = FeedSupervisor(fy.adapter(), Collector(), FAST)
        await supervisor.subscribe([SBIN], "quote")
        with pytest.raises(FeedAuthError, match="hsm_key"):
            await asyncio.wait_for(supervisor.run(), 10)
    assert fy.emulator.history[0].closed == "access token expired"


async def test_the_symbol_limit_is_reported_from_the_server_message() -> None:
    async with fyers_emulator(symbol_limit=1) as fy:
        adapter = fy.adapter()
        supervisor = FeedSupervisor(adapter, Collector(), FAST)
        await supervisor.subscribe([SBIN, NIFTY], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: adapter.server_errors)
        await stop(task)
    assert adapter.server_errors[0].startswith("51001: Symbol limit exceeded")
    assert len(fy.emulator.history[0].topics) == 1


async def test_unknown_symbols_are_reported_and_the_rest_stream() -> None:
    async with fyers_emulator(rate=300) as fy:
        adapter = fy.adapter()
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe(["NSE:NOPE-EQ", SBIN], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: sink.ticks)
        await stop(task)
    assert adapter.unknown == {"NSE:NOPE-EQ"} and {t.token for t in sink.ticks} == {SBIN}


async def test_malformed_frames_are_counted_and_skipped_and_the_stream_goes_on() -> None:
    async with fyers_emulator(rate=300) as fy:
        adapter = fy.adapter()
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([SBIN], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: sink.ticks)
        fy.emulator.send_raw(b"\x00\x0f\x06\x00\x00\x00\x09\x00\x03\x55\x00")
        fy.emulator.send_raw(b"\x00")
        count = len(sink.ticks)
        await wait_for(lambda: sum(adapter.skipped.values()) >= 2 and len(sink.ticks) > count)
        await stop(task)
    assert supervisor.statuses[0].reconnects == 0


async def test_subscriptions_are_pooled_over_connections_when_one_is_full() -> None:
    async with fyers_emulator(rate=400) as fy:
        adapter = fy.adapter(max_instruments_per_connection=1, max_connections=2)
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([SBIN, NIFTY], "quote")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: {t.token for t in sink.ticks} == {SBIN, NIFTY})
        await stop(task)
        topics = sorted(len(log.topics) for log in fy.emulator.history)
    assert len(supervisor.statuses) == 2 and topics == [1, 1]


async def test_switching_full_to_quote_unsubscribes_the_depth_topic() -> None:
    async with fyers_emulator(rate=200) as fy:
        supervisor = FeedSupervisor(fy.adapter(), Collector(), FAST)
        await supervisor.subscribe([SBIN], "full")
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: supervisor.connected and len(fy.emulator.history[0].topics) == 2)
        await supervisor.subscribe([SBIN], "quote")
        await wait_for(lambda: len(fy.emulator.history[0].topics) == 1)
        await supervisor.unsubscribe([SBIN])
        await wait_for(lambda: fy.emulator.history[0].topics == [])
        await stop(task)
        kinds = [r.kind for r in fy.emulator.history[0].requests if r.kind != wire.PING]
    assert kinds[:2] == [wire.AUTH, wire.MODE] and kinds.count(wire.UNSUBSCRIBE) == 2

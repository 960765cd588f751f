"""The Angel One client against the emulator over loopback, under the real supervisor.

Exact values come from ticks the test scripts into the emulator (``push``); faults come from the
emulator's options. Timings are short and every wait is a deadline, never a measured duration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from marketpulse.feeds.angelone import wire
from marketpulse.feeds.base import (
    FeedAuthError,
    FeedConnectionError,
    FeedLimitError,
    FeedSupervisor,
    ReconnectPolicy,
)
from marketpulse.model import DepthLevel, Mode, Tick, price_change
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.angelone.support import (
    Collector,
    Running,
    emulator,
    make_adapter,
    wait_for,
)

FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.2, heartbeat_timeout=2.0, stall_timeout=60.0)
TS = 1_705_293_930_123  # 2024-01-15 10:15:30.123 IST


def tracked(running: Running, symbol: str, mode: str = "full") -> TrackedSymbol:
    exchange = symbol.rpartition(".")[2]
    return TrackedSymbol(symbol, "angelone", running.token(symbol), exchange, mode)


def full_tick(token: str, ltp: float, n: int) -> Tick:
    """A SNAP_QUOTE-shaped tick whose every value survives the wire exactly (paise, seconds)."""
    return Tick(
        "script", token, "NSE", "full", ltp, ltq=15 + n, atp=2498.1, volume=3_456_789 + n,
        total_buy_qty=125_000, total_sell_qty=98_000, open=2480.0, high=2515.0, low=2475.5,
        close=2470.0, oi=0, upper_circuit=2717.0, lower_circuit=2223.0, high_52w=2600.0,
        low_52w=1900.0, ts_exchange=TS + n, ts_last_trade=1_705_293_925_000,
        bids=[DepthLevel(ltp - 0.05 * (i + 1), 75 * (i + 1), i + 1) for i in range(5)],
        asks=[DepthLevel(ltp + 0.05 * (i + 1), 50 * (i + 1), i + 2) for i in range(5)],
    )  # fmt: skip


def received(tick: Tick, symbol: str, exchange: str, mode: str) -> Tick:
    """What the client must deliver for a pushed tick: Angel's source, wire-rounded prices."""
    out = msgspec.structs.replace(tick, source="angelone", symbol=symbol, exchange=exchange,
                                  mode=mode)  # fmt: skip
    decoded = wire.decode_one(wire.encode_packet(out, wire.WIRE_MODE_FOR[mode]), 0)
    assert isinstance(decoded, Tick)
    return msgspec.structs.replace(decoded, symbol=symbol, exchange=exchange, ts_recv=None)


async def running_supervisor(supervisor: FeedSupervisor) -> asyncio.Task[None]:
    return asyncio.create_task(supervisor.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_scripted_ticks_arrive_exactly_with_symbols_and_index_segments(
    tmp_path: Path,
) -> None:
    async with emulator() as running:
        adapter = make_adapter(running, tmp_path)
        reliance = tracked(running, "RELIANCE.NSE")
        nifty = tracked(running, "NIFTY50.NSE_INDEX", "ltp")
        adapter.track([reliance, nifty])
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([reliance.token], Mode.FULL)
        await supervisor.subscribe([nifty.token], Mode.LTP)
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: len(hub.subscribed_tokens()) == 2)

        script = [
            full_tick(reliance.token, 2500.75, 0),
            Tick("script", nifty.token, "NSE_INDEX", "ltp", 21500.55, ts_exchange=TS + 1),
            full_tick(reliance.token, 2500.80, 2),
            full_tick(reliance.token, 2499.95, 3),
            Tick("script", nifty.token, "NSE_INDEX", "ltp", 21499.05, ts_exchange=TS + 4),
        ]
        assert running.emulator.push(script) == 5
        await wait_for(lambda: len(sink.ticks) == 5)

        got = [msgspec.structs.replace(t, ts_recv=None) for t in sink.ticks]
        assert got == [
            received(script[0], "RELIANCE.NSE", "NSE", "full"),
            received(script[1], "NIFTY50.NSE_INDEX", "NSE_INDEX", "ltp"),
            received(script[2], "RELIANCE.NSE", "NSE", "full"),
            received(script[3], "RELIANCE.NSE", "NSE", "full"),
            received(script[4], "NIFTY50.NSE_INDEX", "NSE_INDEX", "ltp"),
        ]
        first = got[0]  # spelled out once, independently of the codec
        assert (first.ltp, first.close, first.atp, first.volume) == (2500.75, 2470.0, 2498.1,
                                                                     3_456_789)  # fmt: skip
        assert (first.change, first.change_pct) == price_change(2500.75, 2470.0)
        assert first.bids is not None and first.bids[0] == DepthLevel(2500.7, 75, 1)
        assert (first.ts_exchange, first.ts_last_trade) == (TS, 1_705_293_925_000)
        assert all(t.ts_recv for t in sink.ticks)
        await stop(task)


async def test_a_mode_change_unsubscribes_the_old_mode_first(tmp_path: Path) -> None:
    async with emulator() as running:
        adapter = make_adapter(running, tmp_path)
        reliance = tracked(running, "RELIANCE.NSE")
        adapter.track([reliance])
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([reliance.token], Mode.FULL)
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: len(hub.subscribed_tokens()) == 1)
        await supervisor.subscribe([reliance.token], Mode.LTP)
        client = hub.clients[0]
        await wait_for(lambda: len(client.requests) == 3)
        assert [(r.action, r.mode) for r in client.requests] == [(1, 3), (0, 3), (1, 1)]
        assert client.modes == {(1, reliance.token): {1}}
        running.emulator.push([full_tick(reliance.token, 2500.75, 0)])
        await wait_for(lambda: len(sink.ticks) == 1)
        assert (sink.ticks[0].mode, sink.ticks[0].volume) == ("ltp", None)
        await supervisor.unsubscribe([reliance.token])
        await wait_for(lambda: not hub.subscribed_tokens())
        await stop(task)


async def test_after_a_drop_the_client_reconnects_and_resubscribes_every_token_in_its_mode(
    tmp_path: Path,
) -> None:
    async with emulator(40.0, drop_every=1.0) as running:
        adapter = make_adapter(running, tmp_path)
        future = running.emulator.universe.specs[-1].symbol  # an NFO contract: exchangeType 2
        items = [
            tracked(running, "RELIANCE.NSE"),
            tracked(running, "INFY.NSE", "quote"),
            tracked(running, "NIFTY50.NSE_INDEX", "ltp"),
            tracked(running, future, "full"),
        ]
        adapter.track(items)
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        for item in items:
            await supervisor.subscribe([item.token], Mode(item.mode))
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: len(hub.history) >= 2 and len(hub.history[1].modes) == 4)
        expected = {(wire.EXCHANGE_TYPES[i.exchange], i.token):
                    {int(wire.WIRE_MODE_FOR[i.mode])} for i in items}  # fmt: skip
        assert hub.history[0].modes == expected
        assert hub.history[1].modes == expected
        before = len(sink.ticks)
        await wait_for(lambda: len(sink.ticks) > before + 5)
        assert supervisor.statuses[0].reconnects >= 1
        assert "socket closed" in (supervisor.statuses[0].last_disconnect or "")
        assert {t.mode for t in sink.ticks} == {"full", "quote", "ltp"}
        await stop(task)


async def test_a_silent_socket_is_detected_and_replaced(tmp_path: Path) -> None:
    async with emulator(20.0, silence_after=0.5) as running:
        adapter = make_adapter(running, tmp_path, ping_interval=0.2)
        policy = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=0.8,
                                 stall_timeout=60.0)  # fmt: skip
        reliance = tracked(running, "RELIANCE.NSE")
        adapter.track([reliance])
        supervisor = FeedSupervisor(adapter, Collector(), policy)
        await supervisor.subscribe([reliance.token], Mode.FULL)
        task = await running_supervisor(supervisor)
        await wait_for(lambda: len(running.emulator.hub.history) >= 2)
        await wait_for(lambda: supervisor.statuses[0].reconnects >= 1)
        assert "heartbeat timeout" in (supervisor.statuses[0].last_disconnect or "")
        await stop(task)


async def test_an_expired_session_stops_the_feed_with_the_login_hint(tmp_path: Path) -> None:
    async with emulator(20.0, expire_token_after=1.0) as running:
        adapter = make_adapter(running, tmp_path)
        reliance = tracked(running, "RELIANCE.NSE")
        adapter.track([reliance])
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([reliance.token], Mode.LTP)
        with pytest.raises(FeedAuthError, match=r"HTTP 401.*marketpulse login angelone"):
            await asyncio.wait_for(supervisor.run(), 20)
        assert sink.ticks  # it streamed until the session expired
        assert running.emulator.hub.rejected == [401]
        assert supervisor.fatal_error is not None


async def test_text_pings_keep_an_idle_connection_alive(tmp_path: Path) -> None:
    policy = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=1.0,
                             stall_timeout=60.0)  # fmt: skip
    async with emulator() as running:  # no market data at all
        adapter = make_adapter(running, tmp_path, ping_interval=0.1)
        supervisor = FeedSupervisor(adapter, Collector(), policy)
        await supervisor.subscribe([running.token("RELIANCE.NSE")], Mode.FULL)
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: bool(hub.history) and hub.history[0].pings >= 20)
        assert len(hub.history) == 1
        assert supervisor.statuses[0].reconnects == 0
        await stop(task)

    async with emulator() as running:  # the same socket without pings is declared dead
        adapter = make_adapter(running, tmp_path, ping_interval=3600.0)
        supervisor = FeedSupervisor(adapter, Collector(), policy)
        await supervisor.subscribe([running.token("RELIANCE.NSE")], Mode.FULL)
        task = await running_supervisor(supervisor)
        await wait_for(lambda: len(running.emulator.hub.history) >= 2)
        assert "heartbeat timeout" in (supervisor.statuses[0].last_disconnect or "")
        await stop(task)


async def test_subscriptions_pool_over_connections_up_to_the_account_limit(
    tmp_path: Path,
) -> None:
    async with emulator() as running:
        adapter = make_adapter(running, tmp_path)
        tokens = [str(n) for n in range(1, 3001)]
        adapter.track([TrackedSymbol(f"S{t}.NSE", "angelone", t, "NSE", "ltp") for t in tokens])
        supervisor = FeedSupervisor(adapter, Collector(), FAST)
        await supervisor.subscribe(tokens[:1500], Mode.LTP)
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: sorted(len(c.modes) for c in hub.clients) == [500, 1000])
        await supervisor.subscribe(tokens[1500:], Mode.LTP)
        await wait_for(lambda: sorted(len(c.modes) for c in hub.clients) == [1000, 1000, 1000])
        assert len(hub.subscribed_tokens()) == 3000
        with pytest.raises(FeedLimitError, match=r"3000 .*1000 per connection × 3 connections"):
            await supervisor.subscribe(["3001"], Mode.LTP)
        assert len(supervisor.subscriptions) == 3000
        assert not any(c.errors for c in hub.history)
        await stop(task)


async def test_the_broker_limits_are_enforced_and_reported(tmp_path: Path) -> None:
    async with emulator() as running:
        adapter = make_adapter(running, tmp_path)
        session = await adapter.load_credentials()
        connections = [await adapter.connect(session) for _ in range(3)]
        with pytest.raises(FeedConnectionError, match="HTTP 429"):
            await adapter.connect(session)
        assert running.emulator.hub.rejected == [429]
        first = connections[0]
        await first.subscribe([str(n) for n in range(1, 1002)], Mode.LTP)
        assert await asyncio.wait_for(first.receive(), 5) == []  # the error text, no ticks
        assert list(adapter.server_errors) == [
            "E1002: Invalid Request. Subscription Limit Exceeded"
        ]
        assert not running.emulator.hub.clients[0].modes  # the whole request was refused
        for connection in connections:
            await connection.close()


async def test_malformed_frames_are_counted_and_skipped_without_breaking_the_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with emulator() as running:
        adapter = make_adapter(running, tmp_path)
        reliance = tracked(running, "RELIANCE.NSE", "ltp")
        adapter.track([reliance])
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([reliance.token], Mode.LTP)
        task = await running_supervisor(supervisor)
        hub = running.emulator.hub
        await wait_for(lambda: len(hub.subscribed_tokens()) == 1)
        good = wire.encode_packet(Tick("x", reliance.token, "NSE", "ltp", 1.5), wire.WireMode.LTP)
        for frame in (good[:30], good[:30], b"\x09" + good[1:], good, "surprise"):
            hub.broadcast(frame)
        await wait_for(lambda: len(sink.ticks) == 1)
        assert adapter.skipped == {"truncated": 2, "unknown_mode": 1}
        assert sink.ticks[0].ltp == 1.5
        warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
        assert len(warnings) == 2  # once per reason, with a sample
        assert any("unexpected text" in r.getMessage() for r in caplog.records)
        assert supervisor.statuses[0].reconnects == 0
        await stop(task)

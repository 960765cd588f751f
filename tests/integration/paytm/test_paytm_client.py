"""The Paytm feed client against the emulator over real sockets: exact values, concatenated
packets, reconnect + resubscribe in each mode, auth failures, id clashes, malformed data."""

from __future__ import annotations

import asyncio

import pytest

from marketpulse.feeds.base import FeedAuthError, FeedSupervisor
from marketpulse.feeds.paytm.credentials import PaytmFeedCredentials
from marketpulse.model import DepthLevel, Mode, Tick
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.kite.helpers import Collector, stop, wait_for
from tests.integration.paytm.helpers import FAST, paytm_emulator

LTT_MS = 1_721_018_730_000  # 2024-07-15 10:15:30 IST (spec §10)


async def _receive_until(connection: object, predicate: object) -> list[Tick]:
    got: list[Tick] = []
    while not any(predicate(t) for t in got):  # type: ignore[operator]
        got += await asyncio.wait_for(connection.receive(), 10)  # type: ignore[attr-defined]
    return got


async def test_pushed_ticks_arrive_with_exact_values_symbols_and_one_frame_for_several() -> None:
    async with paytm_emulator() as paytm:
        infy, nifty = paytm.key("INFY.NSE"), paytm.key("NIFTY50.NSE_INDEX")
        adapter = paytm.adapter()
        adapter.track(
            [
                TrackedSymbol("INFY.NSE", "paytm", infy, "NSE", "full"),
                TrackedSymbol("NIFTY50.NSE_INDEX", "paytm", nifty, "NSE_INDEX", "quote"),
            ]
        )
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe([infy], Mode.FULL)
            await connection.subscribe([nifty], Mode.QUOTE)
            await wait_for(lambda: len(paytm.emulator.history[-1].modes) == 2)
            pushed_infy = Tick(
                source="paytm", token=infy, exchange="NSE", mode="full", ltp=1525.5, ltq=10,
                atp=1523.25, volume=1_234_567, total_buy_qty=50_000, total_sell_qty=60_000,
                open=1510.0, high=1530.0, low=1505.5, close=1500.0, change=25.5,
                change_pct=1.7, high_52w=1999.95, low_52w=1200.05, ts_last_trade=LTT_MS,
                bids=[DepthLevel(1525.45 - i * 0.05, 75 + i, 3 + i) for i in range(5)],
                asks=[DepthLevel(1525.55 + i * 0.05, 50 + i, 2 + i) for i in range(5)],
            )  # fmt: skip
            pushed_nifty = Tick(
                source="paytm", token=nifty, exchange="NSE_INDEX", mode="quote", ltp=24586.7,
                open=24550.1, high=24601.8, low=24512.25, close=24502.35, change=84.35,
                change_pct=0.34, high_52w=24635.8, low_52w=19281.75,
            )  # fmt: skip
            paytm.emulator.push([pushed_infy, pushed_nifty])
            got = await _receive_until(connection, lambda t: t.ltp == 24586.7)
        finally:
            await connection.close()
    infy_tick = next(t for t in got if t.ltp == 1525.5)
    nifty_tick = next(t for t in got if t.ltp == 24586.7)
    assert (infy_tick.symbol, infy_tick.exchange, infy_tick.token) == ("INFY.NSE", "NSE", infy)
    assert (infy_tick.volume, infy_tick.total_sell_qty, infy_tick.ts_last_trade) == (
        1_234_567, 60_000, LTT_MS)  # fmt: skip
    assert infy_tick.close == 1500.0 and infy_tick.high_52w == 1999.95
    assert infy_tick.bids == [DepthLevel(round(1525.45 - i * 0.05, 2), 75 + i, 3 + i)
                              for i in range(5)]  # fmt: skip
    assert (nifty_tick.symbol, nifty_tick.mode, nifty_tick.low_52w) == (
        "NIFTY50.NSE_INDEX", "quote", 19281.75)  # fmt: skip
    # one frame per ADD (the current state), then both pushed packets concatenated in one frame
    assert paytm.emulator.history[0].frames_sent == 3


async def test_an_index_and_an_equity_with_the_same_id_stay_apart() -> None:
    async with paytm_emulator(rate=300) as paytm:
        nifty, thirteenth = paytm.key("NIFTY50.NSE_INDEX"), "NSE:13:EQUITY"
        assert paytm.emulator.by_key[thirteenth].spec.is_index is False
        sink = Collector()
        supervisor = FeedSupervisor(paytm.adapter(), sink, FAST)
        await supervisor.subscribe([nifty, thirteenth], Mode.LTP)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: {t.token for t in sink.ticks} == {nifty, thirteenth}, 20)
        finally:
            await stop(task)
    by_token = {t.token: t for t in sink.ticks}
    assert by_token[nifty].exchange == "NSE_INDEX" and by_token[nifty].ts_exchange
    assert by_token[thirteenth].exchange == "NSE" and by_token[thirteenth].ts_last_trade
    assert by_token[nifty].ltp > 10 * by_token[thirteenth].ltp


async def test_instruments_the_wire_cannot_tell_apart_are_refused_on_one_connection() -> None:
    async with paytm_emulator() as paytm:
        adapter = paytm.adapter()
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe(["NSE:13:EQUITY", "NSE:13:OPTION"], Mode.LTP)
            await wait_for(lambda: paytm.emulator.history[-1].modes)
        finally:
            await connection.close()
    assert paytm.emulator.history[0].modes == {"NSE:13:EQUITY": "LTP"}
    assert adapter.refused == {"NSE:13:OPTION": 1}


async def test_a_dropped_connection_reconnects_and_resubscribes_each_instrument_in_its_mode(
) -> None:  # fmt: skip
    async with paytm_emulator(rate=300) as paytm:
        infy, nifty = paytm.key("INFY.NSE"), paytm.key("NIFTY50.NSE_INDEX")
        sink = Collector()
        supervisor = FeedSupervisor(paytm.adapter(), sink, FAST)
        await supervisor.subscribe([infy], Mode.QUOTE)
        await supervisor.subscribe([nifty], Mode.FULL)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: len(sink.ticks) > 5)
            paytm.emulator.drop_all()
            await wait_for(lambda: supervisor.statuses[0].reconnects >= 1)
            before = len(sink.ticks)
            await wait_for(lambda: len(sink.ticks) > before + 5)
        finally:
            await stop(task)
    assert paytm.emulator.history[1].modes == {infy: "QUOTE", nifty: "FULL"}
    assert {(t.token, t.mode) for t in sink.ticks} == {(infy, "quote"), (nifty, "full")}


async def test_a_mode_change_removes_the_old_mode_then_adds_the_new_one() -> None:
    async with paytm_emulator() as paytm:
        infy = paytm.key("INFY.NSE")
        adapter = paytm.adapter()
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe([infy], Mode.LTP)
            await connection.subscribe([infy], Mode.FULL)
            await connection.unsubscribe([infy])
            await wait_for(lambda: len(paytm.emulator.history[-1].messages) == 4)
        finally:
            await connection.close()
    sent = [[(p.action, p.mode) for p in m] for m in paytm.emulator.history[0].messages]
    assert sent == [[("ADD", "LTP")], [("REMOVE", "LTP")], [("ADD", "FULL")],
                    [("REMOVE", "FULL")]]  # fmt: skip
    assert paytm.emulator.history[0].modes == {}


async def test_an_expired_token_stops_the_feed_with_the_login_hint() -> None:
    async with paytm_emulator(rate=100, expire_token_after=0.5) as paytm:
        supervisor = FeedSupervisor(paytm.adapter(), Collector(), FAST)
        await supervisor.subscribe([paytm.key("INFY.NSE")], Mode.LTP)
        with pytest.raises(FeedAuthError, match=r"HTTP 401.*marketpulse login paytm"):
            await asyncio.wait_for(supervisor.run(), 20)
    assert supervisor.statuses[0].state.value == "failed"
    assert 401 in paytm.emulator.rejected


async def test_a_wrong_token_is_refused_at_the_handshake() -> None:
    async with paytm_emulator() as paytm:
        with pytest.raises(FeedAuthError, match="HTTP 401"):
            await paytm.adapter().connect(PaytmFeedCredentials("not-a-token"))
    assert paytm.emulator.rejected == [401]


async def test_subscriptions_beyond_one_connection_are_pooled_over_several() -> None:
    async with paytm_emulator(rate=300, max_connections=3) as paytm:
        keys = [i.key for i in paytm.emulator.listings[:7]]
        sink = Collector()
        adapter = paytm.adapter(max_instruments_per_connection=3, max_connections=3)
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe(keys, Mode.LTP)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: len({t.token for t in sink.ticks}) == 7, timeout=20)
        finally:
            await stop(task)
    assert [s.instruments for s in supervisor.statuses] == [3, 3, 1]


async def test_malformed_data_and_server_text_frames_are_counted_and_skipped() -> None:
    async with paytm_emulator() as paytm:
        key = paytm.key("INFY.NSE")
        adapter = paytm.adapter()
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe([key], Mode.LTP)
            await wait_for(lambda: paytm.emulator.history[-1].modes)
            await connection.receive()  # the current state, sent on ADD
            paytm.emulator.send_text('{"message": "some server error"}')
            paytm.emulator.send_raw(b"\x3d\x01\x02")  # a truncated LTP packet
            paytm.emulator.push(
                [Tick(source="paytm", token=key, exchange="NSE", mode="ltp", ltp=5.0)]
            )
            got = await _receive_until(connection, lambda t: t.ltp == 5.0)
        finally:
            await connection.close()
    assert got[-1].ltp == 5.0
    assert adapter.skipped["server text frame"] == 1 and sum(adapter.skipped.values()) == 2

"""The Dhan feed client against the emulator over real sockets: exact values, reconnects,
disconnect codes and pooling over connections."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from marketpulse.emulators.dhan import TEST_ACCESS_TOKEN, TEST_CLIENT_ID
from marketpulse.feeds.base import FeedAuthError, FeedSupervisor
from marketpulse.feeds.dhan.credentials import DhanCredentials
from marketpulse.model import DepthLevel, Mode, Tick
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.dhan.helpers import FAST, dhan_emulator
from tests.integration.kite.helpers import Collector, stop, wait_for


async def test_pushed_ticks_arrive_with_exact_values_prev_close_and_symbol() -> None:
    async with dhan_emulator() as dhan:
        infy = dhan.key("INFY.NSE")
        adapter = dhan.adapter()
        adapter.track([TrackedSymbol("INFY.NSE", "dhan", infy, "NSE", "full")])
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe([infy], Mode.FULL)
            await wait_for(lambda: dhan.emulator.history and dhan.emulator.history[-1].modes)
            snapshot: list[Tick] = []
            while not snapshot:  # prev close, then the current state, on subscribe
                snapshot = await connection.receive()
            pushed = Tick(
                source="dhan", token=infy, exchange="NSE", mode="full", ltp=1525.5, ltq=10,
                atp=1523.25, volume=1_234_567, total_buy_qty=50_000, total_sell_qty=60_000,
                open=1510.0, high=1530.0, low=1505.5, ts_last_trade=1_705_293_925_000,
                bids=[DepthLevel(1525.45, 75, 3)] * 5, asks=[DepthLevel(1525.55, 50, 2)] * 5,
            )  # fmt: skip
            dhan.emulator.push([pushed])
            got: list[Tick] = []
            while not got:
                got = await connection.receive()
        finally:
            await connection.close()
    close = snapshot[0].close
    assert snapshot[0].symbol == "INFY.NSE" and close
    tick = got[0]
    assert (tick.symbol, tick.ltp, tick.volume, tick.total_sell_qty) == (
        "INFY.NSE", 1525.5, 1_234_567, 60_000)  # fmt: skip
    assert tick.ts_last_trade == 1_705_293_925_000 and tick.close == close
    assert tick.bids == pushed.bids and tick.asks == pushed.asks
    assert dhan.emulator.history[0].requests[0].code == 21


async def test_twenty_level_depth_reaches_full_ticks() -> None:
    async with dhan_emulator(rate=200) as dhan:
        key = dhan.key("INFY.NSE")
        adapter = dhan.adapter(depth_levels=20)
        assert adapter.max_instruments_per_connection == 50
        sink = Collector()
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe([key], Mode.FULL)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: any(len(t.bids or []) == 20 for t in sink.ticks))
        finally:
            await stop(task)
    deep = next(t for t in sink.ticks if len(t.bids or []) == 20)
    assert deep.mode == "full" and len(deep.asks or []) == 20
    assert deep.bids is not None and deep.bids[0].price > deep.bids[19].price
    assert any(log.depth for log in dhan.emulator.history)


async def test_a_dropped_connection_reconnects_and_resubscribes_in_its_mode() -> None:
    async with dhan_emulator(rate=300) as dhan:
        keys = [dhan.key("INFY.NSE"), dhan.key("NIFTY50.NSE_INDEX")]
        sink = Collector()
        supervisor = FeedSupervisor(dhan.adapter(), sink, FAST)
        await supervisor.subscribe(keys, Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: len(sink.ticks) > 5)
            dhan.emulator.drop_all()
            await wait_for(lambda: supervisor.statuses[0].reconnects >= 1)
            before = len(sink.ticks)
            await wait_for(lambda: len(sink.ticks) > before + 5)
        finally:
            await stop(task)
    second = dhan.emulator.history[1]
    assert second.modes == {key: {"quote"} for key in keys}
    assert {t.mode for t in sink.ticks} == {"quote"}


async def test_an_expired_token_stops_the_feed_with_an_actionable_error() -> None:
    async with dhan_emulator(rate=100, expire_token_after=0.5) as dhan:
        supervisor = FeedSupervisor(dhan.adapter(), Collector(), FAST)
        await supervisor.subscribe([dhan.key("INFY.NSE")], Mode.LTP)
        with pytest.raises(FeedAuthError, match=r"807.*marketpulse login dhan"):
            await asyncio.wait_for(supervisor.run(), 20)
    assert supervisor.statuses[0].state.value == "failed"


@pytest.mark.parametrize(
    ("creds", "reason"),
    [(DhanCredentials("1000000001", "wrong"), "809"), (DhanCredentials("42", "wrong"), "808")],
)
async def test_bad_credentials_are_reported_by_the_disconnect_packet(
    creds: DhanCredentials, reason: str
) -> None:
    async with dhan_emulator() as dhan:
        connection = await dhan.adapter().connect(creds)
        try:
            with pytest.raises(FeedAuthError, match=reason):
                await connection.receive()
        finally:
            await connection.close()


async def test_a_sixth_connection_disconnects_the_oldest_with_805() -> None:
    async with dhan_emulator(max_connections=2) as dhan:
        adapter = dhan.adapter()
        creds = await adapter.load_credentials()
        first, second, third = [await adapter.connect(creds) for _ in range(3)]
        try:
            with pytest.raises(Exception, match="805"):
                await asyncio.wait_for(first.receive(), 10)
        finally:
            for c in (first, second, third):
                await c.close()
    assert adapter.disconnects[805] == 1


async def test_over_the_per_connection_limit_the_emulator_answers_804() -> None:
    async with dhan_emulator(max_instruments=2) as dhan:
        adapter = dhan.adapter()
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            keys = [i.key for i in dhan.emulator.listings[:3]]
            await connection.subscribe(keys, Mode.LTP)
            with pytest.raises(Exception, match="804"):  # noqa: PT012 - read until it comes
                while True:
                    await asyncio.wait_for(connection.receive(), 10)
        finally:
            await connection.close()


async def test_subscriptions_beyond_one_connection_are_pooled_over_several() -> None:
    async with dhan_emulator(rate=300) as dhan:
        keys = [i.key for i in dhan.emulator.listings[:7]]
        sink = Collector()
        adapter = dhan.adapter(max_instruments_per_connection=3)
        supervisor = FeedSupervisor(adapter, sink, FAST)
        await supervisor.subscribe(keys, Mode.LTP)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: len({t.token for t in sink.ticks}) == 7, timeout=20)
        finally:
            await stop(task)
    assert [s.instruments for s in supervisor.statuses] == [3, 3, 1]
    assert len({log_.client_id for log_ in dhan.emulator.history}) == 1
    assert sorted(len(log_.modes) for log_ in dhan.emulator.history[:3]) == [1, 3, 3]


async def test_malformed_frames_are_counted_and_skipped() -> None:
    async with dhan_emulator() as dhan:
        key = dhan.key("INFY.NSE")
        adapter = dhan.adapter()
        connection = await adapter.connect(await adapter.load_credentials())
        try:
            await connection.subscribe([key], Mode.LTP)
            await wait_for(lambda: dhan.emulator.history[-1].modes)
            await connection.receive()
            dhan.emulator.send_raw(b"\x02\x10\x00")
            dhan.emulator.push(
                [Tick(source="dhan", token=key, exchange="NSE", mode="ltp", ltp=5.0)]
            )
            got: list[Tick] = []
            while not any(t.ltp == 5.0 for t in got):
                got += await connection.receive()
        finally:
            await connection.close()
    assert got[-1].ltp == 5.0 and sum(adapter.skipped.values()) == 1


async def _raw_upgrade(port: int, query: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake and then never answers anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


async def test_the_emulator_pings_like_dhan_and_drops_a_client_that_never_answers() -> None:
    """Dhan's server pings every 10 s and drops a socket silent for 40 s (spec §9.5); here
    scaled down to 0.2 s and 0.5 s."""
    async with dhan_emulator(ping_interval=0.2, ping_timeout=0.5) as dhan:
        query = f"version=2&token={TEST_ACCESS_TOKEN}&clientId={TEST_CLIENT_ID}&authType=2"
        reader, writer = await _raw_upgrade(dhan.port, query)
        try:
            first = await asyncio.wait_for(reader.readexactly(2), 5)
            assert first[0] == 0x89  # FIN + ping
            await asyncio.wait_for(reader.readexactly(first[1] & 0x7F), 5)
            # No pong: the server gives up and closes the connection (read() returns at EOF).
            await asyncio.wait_for(reader.read(), 10)
            assert reader.at_eof()
        finally:
            writer.close()

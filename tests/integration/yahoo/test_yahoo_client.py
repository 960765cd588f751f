"""The Yahoo feed client against the emulator over real sockets: exact values, both envelopes,
reconnect + resubscribe, the ping watchdog, the 100-symbol cap, malformed frames, and yfinance's
own WebSocket client connected to our emulator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from marketpulse.feeds.base import FeedSupervisor
from marketpulse.feeds.yahoo import wire
from marketpulse.feeds.yahoo.client import YahooAdapter, YahooConnection
from marketpulse.model import Mode, Tick
from tests.integration.kite.helpers import Collector, stop, wait_for
from tests.integration.yahoo.helpers import FAST, RunningEmulator, yahoo_emulator

PUSHED = Tick(
    source="yahoo", token="RELIANCE.NS", exchange="NSE", mode="quote", ltp=3180.55,
    volume=4_567_890, open=3160.0, high=3189.9, low=3151.2, close=3155.15, change=25.4,
    change_pct=0.81, ts_exchange=1_721_018_730_000,
)  # fmt: skip


async def _next(connection: YahooConnection) -> list[Tick]:
    got: list[Tick] = []
    while not got:
        got = await connection.receive()
    return got


@contextlib.asynccontextmanager
async def _connected(yahoo: RunningEmulator, **options: Any) -> AsyncIterator[YahooConnection]:
    adapter = yahoo.adapter(**options)
    connection = await adapter.connect(None)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_pushed_tick_arrives_with_exact_values_after_the_subscribe_snapshot() -> None:
    async with yahoo_emulator() as yahoo, _connected(yahoo) as connection:
        await connection.subscribe(["RELIANCE.NS", "^NSEI"], Mode.FULL)
        snapshot = await _next(connection)
        while len(snapshot) < 2:
            snapshot += await _next(connection)
        yahoo.emulator.push([PUSHED])
        tick = (await _next(connection))[0]
        messages = yahoo.emulator.history[0].messages
    assert {t.symbol for t in snapshot} == {"RELIANCE.NSE", "NIFTY50.NSE_INDEX"}
    assert messages == ['{"subscribe": ["RELIANCE.NS", "^NSEI"]}']
    assert (tick.symbol, tick.exchange, tick.token, tick.mode) == (
        "RELIANCE.NSE", "NSE", "RELIANCE.NS", "quote")  # fmt: skip
    assert (tick.ltp, tick.open, tick.high, tick.low, tick.close, tick.volume) == (
        3180.55, 3160.0, 3189.9, 3151.2, 3155.15, 4_567_890)  # fmt: skip
    assert (tick.change, tick.change_pct, tick.ts_exchange) == (25.4, 0.81, 1_721_018_730_000)
    assert tick.ts_recv is not None


async def test_the_legacy_endpoint_sends_bare_base64_and_the_client_reads_it_the_same() -> None:
    async with (
        yahoo_emulator() as yahoo,
        _connected(yahoo, ws_url=yahoo.legacy_ws_url) as connection,
    ):
        await connection.subscribe(["RELIANCE.NS"], Mode.QUOTE)
        await _next(connection)
        raw: list[str | bytes] = []
        connection._adapter.frame_tap = lambda ts, frame: raw.append(frame)
        yahoo.emulator.push([PUSHED])
        tick = (await _next(connection))[0]
    assert yahoo.emulator.history[0].legacy and not str(raw[0]).startswith("{")
    assert (tick.symbol, tick.ltp, tick.close) == ("RELIANCE.NSE", 3180.55, 3155.15)


async def test_a_dropped_connection_reconnects_and_resubscribes_its_symbols() -> None:
    async with yahoo_emulator(rate=300) as yahoo:
        sink = Collector()
        supervisor = FeedSupervisor(yahoo.adapter(), sink, FAST)
        await supervisor.subscribe(["INFY.NS", "^NSEI", "AAPL"], Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: len(sink.ticks) > 5)
            yahoo.emulator.drop_all()
            await wait_for(lambda: len(yahoo.emulator.history) >= 2)
            seen = len(sink.ticks)
            await wait_for(lambda: len(sink.ticks) > seen + 5)
        finally:
            await stop(task)
    second = yahoo.emulator.history[1]
    assert supervisor.statuses[0].reconnects >= 1
    assert second.messages[0] == '{"subscribe": ["INFY.NS", "^NSEI", "AAPL"]}'
    assert {t.symbol for t in sink.ticks[seen:]} <= {"INFY.NSE", "NIFTY50.NSE_INDEX",
                                                     "AAPL.NASDAQ"}  # fmt: skip


async def _handshake_then_silence(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A WebSocket server that completes the upgrade and then never answers anything."""
    request = await reader.readuntil(b"\r\n\r\n")
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await writer.drain()
    with contextlib.suppress(Exception):
        while await reader.read(4096):
            pass  # swallow pings and requests, answer nothing
    writer.close()


async def test_a_socket_that_stops_answering_pings_is_reconnected_by_the_watchdog() -> None:
    server = await asyncio.start_server(_handshake_then_silence, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = YahooAdapter(f"ws://127.0.0.1:{port}/?version=2", ping_interval=0.1,
                           resubscribe_interval=0)  # fmt: skip
    supervisor = FeedSupervisor(adapter, Collector(), FAST)
    await supervisor.subscribe(["INFY.NS"], Mode.QUOTE)
    task = asyncio.create_task(supervisor.run())
    try:
        await wait_for(lambda: supervisor.statuses[0].connects >= 2)
    finally:
        await stop(task)
        server.close()
    assert "heartbeat timeout" in (supervisor.statuses[0].last_disconnect or "")


async def test_pongs_keep_a_quiet_connection_alive() -> None:
    async with yahoo_emulator(rate=0) as yahoo:
        supervisor = FeedSupervisor(yahoo.adapter(ping_interval=0.1), Collector(), FAST)
        await supervisor.subscribe(["INFY.NS"], Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        try:
            # three heartbeat timeouts of silence apart from the snapshot
            await wait_for(lambda: supervisor.ticks_received == 1)
            await asyncio.sleep(3 * FAST.heartbeat_timeout)
        finally:
            await stop(task)
    assert supervisor.statuses[0].connects == 1


async def test_symbols_beyond_a_connections_cap_go_to_another_connection() -> None:
    symbols = ["INFY.NS", "TCS.NS", "SBIN.NS", "ITC.NS", "^NSEI"]
    async with yahoo_emulator(rate=400, max_symbols=3) as yahoo:
        sink = Collector()
        supervisor = FeedSupervisor(yahoo.adapter(max_instruments_per_connection=3), sink, FAST)
        await supervisor.subscribe(symbols, Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: {t.token for t in sink.ticks} == set(symbols))
        finally:
            await stop(task)
    logs = yahoo.emulator.history
    assert len(logs) == 2 and [len(log.symbols) for log in logs] == [3, 2]
    assert all(not log.dropped for log in logs)


async def test_the_emulator_silently_drops_symbols_past_the_cap_and_unsubscribe_frees_slots() -> (
    None
):
    async with yahoo_emulator(max_symbols=2) as yahoo, _connected(yahoo) as connection:
        await connection.subscribe(["INFY.NS", "NOSUCH.NS", "TCS.NS"], Mode.QUOTE)
        await wait_for(lambda: yahoo.emulator.history[0].dropped)
        await connection.unsubscribe(["NOSUCH.NS"])
        await connection.subscribe(["SBIN.NS"], Mode.QUOTE)
        await wait_for(lambda: "SBIN.NS" in yahoo.emulator.history[0].symbols)
    log = yahoo.emulator.history[0]
    assert log.dropped == ["TCS.NS"] and list(log.symbols) == ["INFY.NS", "SBIN.NS"]


async def test_malformed_frames_are_counted_logged_once_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with yahoo_emulator() as yahoo, _connected(yahoo) as connection:
        await connection.subscribe(["RELIANCE.NS"], Mode.QUOTE)
        await _next(connection)
        with caplog.at_level(logging.WARNING, "marketpulse.feeds.yahoo.client"):
            yahoo.emulator.send_raw('{"type": "pricing", "message": "!!not base64!!"}')
            yahoo.emulator.send_raw("CgRYLk5TFQAAx0IY")  # truncated protobuf, legacy envelope
            yahoo.emulator.send_raw('{"type": "pricing", "message": "%%%"}')
            yahoo.emulator.push([PUSHED])
            tick = (await _next(connection))[0]
        adapter = connection._adapter
    assert tick.ltp == 3180.55
    assert adapter.skipped == {"protobuf": 3}
    assert sum("malformed frame" in r.message for r in caplog.records) == 1


async def test_the_emulator_closes_without_a_status_code_on_a_malformed_request() -> None:
    async with yahoo_emulator() as yahoo, connect(yahoo.ws_url) as ws:
        await ws.send('{"subscribe": "RELIANCE.NS"}')
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1005


async def test_the_whole_set_is_resent_every_resubscribe_interval() -> None:
    async with yahoo_emulator() as yahoo:
        async with _connected(yahoo, resubscribe_interval=0.1) as connection:
            await connection.subscribe(["INFY.NS"], Mode.QUOTE)
            await connection.subscribe(["TCS.NS"], Mode.QUOTE)
            await wait_for(lambda: len(yahoo.emulator.history[0].messages) >= 4)
        messages = yahoo.emulator.history[0].messages
    assert messages[:2] == ['{"subscribe": ["INFY.NS"]}', '{"subscribe": ["TCS.NS"]}']
    assert set(messages[2:4]) == {'{"subscribe": ["INFY.NS", "TCS.NS"]}'}


async def test_yfinance_async_websocket_decodes_our_emulator_exactly() -> None:
    yf = pytest.importorskip("yfinance")
    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    received: list[dict[str, Any]] = []
    async with yahoo_emulator() as yahoo:
        client = yf.AsyncWebSocket(url=yahoo.ws_url, verbose=False)
        await client.subscribe(["RELIANCE.NS"])
        task = asyncio.create_task(client.listen(received.append))
        try:
            await wait_for(lambda: received)  # the on-subscribe snapshot
            yahoo.emulator.push([PUSHED])
            await wait_for(lambda: len(received) >= 2)
        finally:
            await stop(task)
            with contextlib.suppress(Exception):
                await client.close()
        request = yahoo.emulator.history[0].messages[0]
    assert request == '{"subscribe": ["RELIANCE.NS"]}'
    assert received[1] == {
        "id": "RELIANCE.NS", "price": 3180.55, "time": "1721018730000", "currency": "INR",
        "exchange": "NSI", "quote_type": 8, "market_hours": 1, "change_percent": 0.81,
        "day_volume": "4567890", "day_high": 3189.9, "day_low": 3151.2, "change": 25.4,
        "short_name": "RELIANCE INDUSTRIES", "open_price": 3160.0, "previous_close": 3155.15,
        "price_hint": "2",
    }  # fmt: skip
    assert wire.SOURCE == "yahoo"

"""The shared socket half of broker connections, against a real loopback WebSocket server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from marketpulse.feeds.base import FeedAuthError, FeedConnectionError
from marketpulse.feeds.websocket_session import (
    Data,
    WebSocketSession,
    open_websocket,
    require_websocket_url,
    stamped,
)

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, refuse: int | None = None) -> AsyncIterator[str]:
    """A loopback server running ``handler`` per connection (or refusing with ``refuse``)."""

    def check(connection: ServerConnection, request: Request) -> Response | None:
        del request
        if refuse is None:
            return None
        return connection.respond(HTTPStatus(refuse), "refused\n")

    async with serve(handler, "127.0.0.1", 0, process_request=check, ping_interval=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def client(url: str) -> ClientConnection:
    return await connect(url, ping_interval=None)


async def stay_open(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def test_frames_arrive_in_order_as_one_batch_stamped_with_receive_times() -> None:
    async def send_three(ws: ServerConnection) -> None:
        for n in range(3):
            await ws.send(f"frame {n}")
        await ws.wait_closed()

    async with server(send_three) as url:
        session = WebSocketSession(await client(url), "test", stamped)
        got: list[tuple[int, Data]] = []
        while len(got) < 3:
            got += await session.frames()
        await session.close()
    assert [frame for _, frame in got] == ["frame 0", "frame 1", "frame 2"]
    assert all(ts > 0 for ts, _ in got)
    assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)


async def test_a_pong_is_an_empty_batch() -> None:
    async with server(stay_open) as url:
        session = WebSocketSession(await client(url), "test", stamped)
        session.start(session.keep_alive(0.01), "ping")
        assert await asyncio.wait_for(session.frames(), 2) == []
        await session.close()


async def test_a_protocol_heartbeat_goes_out_and_its_answer_is_a_frame() -> None:
    async def answer_ping(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "ping":
                await ws.send("pong")

    async with server(answer_ping) as url:
        session = WebSocketSession(await client(url), "test", stamped)
        session.start(session.keep_alive(0.01, heartbeat="ping", websocket_ping=False), "ping")
        frames = await asyncio.wait_for(session.frames(), 2)
        await session.close()
    assert frames and all(frame == "pong" for _, frame in frames)


async def test_the_close_is_raised_after_the_frames_before_it() -> None:
    async def send_and_close(ws: ServerConnection) -> None:
        await ws.send("last")
        await ws.close(1008, "token expired")

    async with server(send_and_close) as url:
        session = WebSocketSession(await client(url), "test", stamped)
        await asyncio.sleep(0.1)
        assert [frame for _, frame in await session.frames()] == ["last"]
        with pytest.raises(FeedConnectionError, match=r"^test: socket closed \(code 1008"):
            await session.frames()
        with pytest.raises(FeedConnectionError, match="token expired"):
            await session.send("after")
        await session.close()


async def test_the_reader_stops_at_the_limit_until_the_inbox_is_taken() -> None:
    async def send_five(ws: ServerConnection) -> None:
        for n in range(5):
            await ws.send(str(n))
        await ws.wait_closed()

    async with server(send_five) as url:
        session = WebSocketSession(await client(url), "test", stamped, limit=2)
        await asyncio.sleep(0.1)
        first = await session.frames()
        assert [frame for _, frame in first] == ["0", "1"]
        rest: list[tuple[int, Data]] = []
        while len(rest) < 3:
            rest += await asyncio.wait_for(session.frames(), 2)
        await session.close()
    assert [frame for _, frame in rest] == ["2", "3", "4"]


async def test_a_second_socket_reads_into_the_same_inbox_with_its_own_entries() -> None:
    async def send_one(ws: ServerConnection) -> None:
        await ws.send("x")
        await ws.wait_closed()

    def tagged(main: bool) -> Callable[[int, Data], tuple[bool, Data]]:
        return lambda ts, frame: (main, frame)

    async with server(send_one) as url:
        session = WebSocketSession(await client(url), "test", tagged(True))
        second = await client(url)
        session.start(session.read(second, "second socket", tagged(False)), "second")
        got: list[tuple[bool, Data]] = []
        while len(got) < 2:
            got += await asyncio.wait_for(session.frames(), 2)
        await second.close()
        with pytest.raises(FeedConnectionError, match=r"^test: second socket closed"):
            await asyncio.wait_for(session.frames(), 2)
        await session.close()
    assert sorted(got) == [(False, "x"), (True, "x")]
    assert [task.get_name() for task in session.tasks] == ["test:reader", "test:second"]


async def test_open_websocket_maps_a_refused_upgrade_and_an_unreachable_host() -> None:
    def refused(exc: InvalidStatus) -> Exception:
        return FeedAuthError(f"refused {exc.response.status_code}")

    def unreachable(exc: Exception) -> Exception:
        return FeedConnectionError(f"unreachable: {type(exc).__name__}")

    async with server(stay_open, refuse=403) as url:
        with pytest.raises(FeedAuthError, match="refused 403") as refusal:
            await open_websocket(url, open_timeout=2, refused=refused, unreachable=unreachable)
    assert refusal.value.__cause__ is None and refusal.value.__suppress_context__
    with pytest.raises(FeedConnectionError, match="unreachable") as failure:
        await open_websocket(
            url + "/gone", open_timeout=2, refused=refused, unreachable=unreachable
        )
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


async def test_open_websocket_leaves_the_library_pings_off() -> None:
    async with server(stay_open) as url:
        ws = await open_websocket(url, open_timeout=2, refused=ValueError, unreachable=ValueError)
        assert ws.ping_interval is None
        await ws.close()


def test_a_url_websockets_cannot_open_is_refused_naming_its_setting() -> None:
    require_websocket_url("wss://example.com/feed?x=1")
    with pytest.raises(ValueError, match=r"^FEED_WS_URL 'http://x' is not a ws:// or wss:// URL"):
        require_websocket_url("http://x", "FEED_WS_URL")
    with pytest.raises(ValueError, match=r"^'nope' is not a ws:// or wss:// URL"):
        require_websocket_url("nope")

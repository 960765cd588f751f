"""The load test's lean WebSocket client against the ``websockets`` server: every message
arrives whole (fragmented, large, compressed), pings are answered, closes are reported, and a
server that does not switch protocols is an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame
from websockets.streams import StreamReader

from marketpulse.loadtest.lean_websocket import HandshakeError, connect, masked_frame

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler, bool], Awaitable[int]]]:
    servers = []

    async def start(handler: Handler, compression: bool = False) -> int:
        started = await serve(
            handler, "127.0.0.1", 0, compression="deflate" if compression else None
        ).__aenter__()
        servers.append(started)
        return int(started.sockets[0].getsockname()[1])

    yield start
    for started in servers:
        started.close()
        await started.wait_closed()


async def _collect(port: int, *, deflate: bool, send: list[str]) -> tuple[list[str], int | None]:
    got: list[str] = []
    ws = await connect(f"ws://127.0.0.1:{port}/x?y=1", lambda m, _: got.append(m), deflate=deflate)
    for text in send:
        ws.send_text(text)
    await asyncio.wait_for(ws.wait_closed(), 10)
    return got, ws.close_code


@pytest.mark.parametrize("compression", [False, True])
async def test_messages_arrive_whole_and_the_close_is_reported(
    server: Callable[[Handler, bool], Awaitable[int]], compression: bool
) -> None:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        assert ws.request.path == "/x?y=1"
        hello = await ws.recv()
        await ws.send(f"echo {hello}")
        await ws.send("é" * 70_000)  # 64-bit length, multi-byte UTF-8
        await ws.send(["frag", "mented ", "message"])
        await ws.send("x" * 300)  # 16-bit length
        await ws.close(4001, "done here")

    port = await server(handler, compression)
    got, code = await _collect(port, deflate=True, send=["ünïcode"])
    assert got == ["echo ünïcode", "é" * 70_000, "fragmented message", "x" * 300]
    assert code == 4001


async def test_pings_are_answered(server: Callable[[Handler, bool], Awaitable[int]]) -> None:
    async def handler(ws: ServerConnection) -> None:
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await ws.send("pong received")
        await ws.close()

    port = await server(handler, False)
    got, code = await _collect(port, deflate=False, send=[])
    assert got == ["pong received"]
    assert code == 1000


async def test_a_refused_upgrade_is_a_handshake_error() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(http, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    try:
        with pytest.raises(HandshakeError, match="403"):
            await connect(f"ws://127.0.0.1:{port}/", lambda m, t: None, deflate=False)
    finally:
        plain.close()
        await plain.wait_closed()


@settings(max_examples=100)
@given(st.binary(max_size=70_000), st.sampled_from([1, 2, 8, 9, 10]))
def test_client_frames_parse_as_masked_frames(payload: bytes, opcode: int) -> None:
    reader = StreamReader()
    reader.feed_data(masked_frame(opcode, payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    frame = None
    while frame is None:
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
    assert (frame.opcode.value, frame.fin, frame.data) == (opcode, True, payload)

"""Pre-encoded WebSocket frames: byte-exact for websockets' own parser, written straight to the
transport only when nothing else has to touch them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from marketpulse import httpserver
from marketpulse.websocket_frames import frame_writer, text_frame, text_frames


def parse_frames(data: bytes) -> list[Frame]:
    """Frames as the websockets library reads them from a server (unmasked)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@settings(max_examples=200)
@given(st.lists(st.text(), max_size=5))
def test_frames_parse_back_to_the_messages(messages: list[str]) -> None:
    frames = parse_frames(text_frames(messages))
    assert [(f.opcode, f.fin, f.data.decode()) for f in frames] == [
        (Opcode.TEXT, True, m) for m in messages
    ]


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_every_length_encoding_boundary(size: int) -> None:
    payload = b"x" * size
    (frame,) = parse_frames(text_frame(payload))
    assert frame.data == payload
    header = {0: 2, 125: 2, 126: 4, 65_535: 4}.get(size, 10)
    assert len(text_frame(payload)) == header + size


def test_a_scope_without_the_extension_has_no_writer() -> None:
    assert frame_writer({"type": "websocket", "extensions": {}}) is None
    assert frame_writer(None) is None


async def _app_writing(results: list[bool]) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        write = frame_writer(websocket.scope)
        assert write is not None
        assert write(text_frames(["before accept"])) is False  # handshake not done yet
        await websocket.accept()
        results.append(write(text_frames(["one", "two"])))
        if not results[-1]:
            await websocket.send_text("one")
            await websocket.send_text("two")
        await websocket.receive_text()  # until the client closes

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, list[bool]]]:
    results: list[bool] = []
    app = await _app_writing(results)
    app.state.server_options = {"ws_per_message_deflate": False}
    async with httpserver.serving(app) as port:
        yield port, results


async def test_frames_are_written_directly_without_extensions(
    served: tuple[int, list[bool]],
) -> None:
    port, results = served
    async with connect(f"ws://127.0.0.1:{port}/ws", compression="deflate") as ws:
        assert [await ws.recv(), await ws.recv()] == ["one", "two"]
    assert results == [True]


async def test_a_negotiated_compression_declines_the_direct_write() -> None:
    results: list[bool] = []
    app = await _app_writing(results)
    app.state.server_options = {"ws_per_message_deflate": True}
    async with (
        httpserver.serving(app) as port,
        connect(f"ws://127.0.0.1:{port}/ws", compression="deflate") as ws,
    ):
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        assert [await ws.recv(), await ws.recv()] == ["one", "two"]
    assert results == [False]


async def test_back_pressure_declines_the_direct_write() -> None:
    declined = asyncio.Event()

    async def endpoint(websocket: WebSocket) -> None:
        write = frame_writer(websocket.scope)
        assert write is not None
        await websocket.accept()
        chunk = text_frames(["x" * 60_000])
        for _ in range(10_000):  # the client never reads: the transport's buffer fills
            if not write(chunk):
                declined.set()
                break
            await asyncio.sleep(0)
        await websocket.receive_text()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    async with httpserver.serving(app) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(declined.wait(), timeout=20)
        writer.close()

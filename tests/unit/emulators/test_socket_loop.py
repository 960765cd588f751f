"""The shared reader/writer of an emulated socket, against a scripted stand-in WebSocket."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from fastapi import WebSocket

from marketpulse.emulators.options import FaultClock, Faults
from marketpulse.emulators.outbox import QueuedConnection
from marketpulse.emulators.socket_loop import Message, frame_writer, serve_socket, text_of


@dataclass(slots=True)
class _Log:
    frames_dropped: int = 0
    closed: str | None = None
    frames_sent: int = 0


class _Socket:
    """Hands out scripted client messages; records what the server sends."""

    def __init__(self, incoming: list[Message]) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        for message in incoming:
            self.incoming.put_nowait(message)
        self.sent: list[Any] = []
        self.closed = asyncio.Event()

    async def receive(self) -> Message:
        return await self.incoming.get()

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))
        if message["type"] == "websocket.close":
            self.closed.set()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


def _connection(silence_after: float | None = None) -> QueuedConnection[bytes | str, _Log]:
    return QueuedConnection(FaultClock(Faults(silence_after=silence_after)), _Log(), 100)


def test_text_of_decodes_binary_frames() -> None:
    assert text_of({"type": "websocket.receive", "text": "hi"}) == "hi"
    assert text_of({"type": "websocket.receive", "bytes": b"h\xffi"}) == "h\ufffdi"
    assert text_of({"type": "websocket.receive"}) is None


async def test_frames_are_sent_in_order_then_the_close() -> None:
    socket = _Socket([])
    connection = _connection()
    forgotten: list[object] = []
    connection.send_raw(b"\x01")
    connection.send_raw("text")
    connection.close(None, "")
    serving = asyncio.create_task(serve_socket(
        cast(WebSocket, socket), connection, read=lambda message: None,
        write=frame_writer(cast(WebSocket, socket), connection.log), forget=forgotten.append,
    ))  # fmt: skip
    await asyncio.wait_for(socket.closed.wait(), 5)
    socket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1005})
    await asyncio.wait_for(serving, 5)
    assert socket.sent == [b"\x01", "text", {"type": "websocket.close", "code": None,
                                              "reason": ""}]  # fmt: skip
    assert connection.log.frames_sent == 2
    assert forgotten == [connection]


async def test_messages_reach_read_until_the_client_disconnects() -> None:
    socket = _Socket([
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "bytes": b"two"},
        {"type": "websocket.disconnect", "code": 1000},
    ])  # fmt: skip
    connection = _connection()
    read: list[str | None] = []
    await asyncio.wait_for(serve_socket(
        cast(WebSocket, socket), connection, read=lambda message: read.append(text_of(message)),
        write=frame_writer(cast(WebSocket, socket), connection.log), forget=lambda c: None,
    ), 5)  # fmt: skip
    assert read == ["one", "two"]
    assert connection.log.closed is None


async def test_a_silent_connection_sends_nothing_but_still_closes() -> None:
    socket = _Socket([])
    connection = _connection(silence_after=0.0)
    connection.send_raw(b"\x01")
    connection.close(1011, "dropped")
    serving = asyncio.create_task(serve_socket(
        cast(WebSocket, socket), connection, read=lambda message: None,
        write=frame_writer(cast(WebSocket, socket), connection.log), forget=lambda c: None,
    ))  # fmt: skip
    await asyncio.wait_for(socket.closed.wait(), 5)
    socket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1011})
    await asyncio.wait_for(serving, 5)
    assert socket.sent == [{"type": "websocket.close", "code": 1011, "reason": "dropped"}]


async def test_a_failing_read_is_noted_in_the_log() -> None:
    socket = _Socket([{"type": "websocket.receive", "text": "boom"}])
    connection = _connection()

    def read(message: Message) -> None:
        raise ValueError("bad frame")

    await asyncio.wait_for(serve_socket(
        cast(WebSocket, socket), connection, read=read,
        write=frame_writer(cast(WebSocket, socket), connection.log), forget=lambda c: None,
    ), 5)  # fmt: skip
    assert connection.log.closed == "read failed: ValueError('bad frame')"

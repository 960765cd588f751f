"""Run one accepted emulator socket: a reader applying client frames, a writer sending the outbox.

Every queue-based broker emulator serves its sockets the same way once the handshake is done:
the reader hands each client message to the protocol (``read``) until the client goes, the
writer sends queued frames (``write``) until a :class:`CloseRequest` closes the socket, sends
nothing while the ``silence_after`` fault holds (heartbeats included: the connection looks
alive but is silent), and a client that vanishes mid-read or mid-send only ends its own
connection, noted in its log. The broker supplies the handshake, how a message is read and how
a frame is sent and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, TypeVar

from fastapi import WebSocket

from marketpulse.emulators.outbox import CloseRequest, QueuedConnection

Message = MutableMapping[str, Any]
"""An ASGI ``websocket.receive`` message (``text`` or ``bytes``)."""

ItemT = TypeVar("ItemT")
ConnectionT = TypeVar("ConnectionT", bound=QueuedConnection[Any, Any])


async def serve_socket(
    websocket: WebSocket,
    connection: ConnectionT,
    *,
    read: Callable[[Message], None],
    write: Callable[[ItemT], Awaitable[None]],
    forget: Callable[[ConnectionT], None],
) -> None:
    """Pump ``connection`` over the accepted ``websocket`` until the client disconnects; then
    ``forget`` it (no more ticks are offered) and stop its writer."""
    writer = asyncio.create_task(_write(websocket, connection, write))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            read(message)
    except Exception as exc:  # a vanished client ends its connection, nothing else
        connection.log.closed = connection.log.closed or f"read failed: {exc!r}"
    finally:
        forget(connection)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _write(
    websocket: WebSocket,
    connection: QueuedConnection[ItemT, Any],
    write: Callable[[ItemT], Awaitable[None]],
) -> None:
    try:
        while True:
            item = await connection.next_item()
            if isinstance(item, CloseRequest):
                await websocket.send({"type": "websocket.close", "code": item.code,
                                      "reason": item.reason})  # fmt: skip
                return
            if connection.silent:
                continue
            await write(item)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"


class FrameLog(Protocol):
    """A connection log that counts the frames its socket sent."""

    frames_sent: int


def frame_writer(websocket: WebSocket, log: FrameLog) -> Callable[[bytes | str], Awaitable[None]]:
    """The usual ``write``: a bytes item goes as a binary frame, a string as a text frame, and
    each counts in ``log.frames_sent``."""

    async def write(item: bytes | str) -> None:
        if isinstance(item, bytes):
            await websocket.send_bytes(item)
        else:
            await websocket.send_text(item)
        log.frames_sent += 1

    return write


def text_requests(handle: Callable[[str], None]) -> Callable[[Message], None]:
    """``read`` for a protocol whose requests are text frames: binary frames are ignored."""

    def read(message: Message) -> None:
        text: str | None = message.get("text")
        if text is not None:
            handle(text)

    return read


def any_frame_as_text(handle: Callable[[str], None]) -> Callable[[Message], None]:
    """``read`` for a server that takes a request in either kind of frame: a binary one is
    decoded as UTF-8 (bad bytes replaced)."""

    def read(message: Message) -> None:
        text = text_of(message)
        if text is not None:
            handle(text)

    return read


def text_of(message: Message) -> str | None:
    """A message's text; a binary frame decoded as UTF-8 (bad bytes replaced)."""
    text: str | None = message.get("text")
    if text is None and message.get("bytes") is not None:
        text = message["bytes"].decode("utf-8", "replace")
    return text

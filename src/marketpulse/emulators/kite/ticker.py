"""The emulated ticker WebSocket at ``/``: handshake checks, then a reader and a writer.

Credentials travel in the query string; a wrong or expired pair is refused with HTTP 403 before
the upgrade, as Kite does. Our choice for the undocumented connection cap: a fourth connection
of one api_key is accepted, told why in an ``error`` text message and closed with code 1008 —
the reason reaches the client (an HTTP status alone would not), and a close is a transient
failure clients retry, unlike a 403 that means "log in again". The writer sends queued frames
and a ``00`` heartbeat after each idle ``heartbeat_interval``; the ``silence_after`` fault
stops it sending anything while the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.kite.core import CloseRequest, EmulatedConnection, KiteEmulator
from marketpulse.feeds.kite.wire import ErrorMessage, encode_text

router = APIRouter()


@router.websocket("/")
async def ticker(websocket: WebSocket) -> None:
    emulator: KiteEmulator = websocket.app.state.emulator
    api_key = websocket.query_params.get("api_key")
    problem = emulator.access_problem(api_key, websocket.query_params.get("access_token"))
    if problem is not None:
        emulator.rejected.append(f"403 {problem}")
        await websocket.close()  # before the upgrade: the server answers HTTP 403
        return
    assert api_key is not None
    await websocket.accept()
    if emulator.live_connections(api_key) >= emulator.max_connections_per_key:
        reason = (
            f"too many connections: api_key {api_key} already has "
            f"{emulator.max_connections_per_key} ticker connections open"
        )
        emulator.rejected.append(f"1008 {reason}")
        await websocket.send_text(encode_text(ErrorMessage(reason)))
        await websocket.close(1008, reason[:120])
        return
    connection = emulator.open_connection(api_key)
    writer = asyncio.create_task(_write(websocket, connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode(errors="replace")
            if text is not None:
                connection.handle(text)
    except Exception as exc:  # a vanished client ends its connection, nothing else
        connection.log.closed = connection.log.closed or f"read failed: {exc!r}"
    finally:
        emulator.forget(connection)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _write(websocket: WebSocket, connection: EmulatedConnection) -> None:
    heartbeat = connection.emulator.heartbeat_interval
    try:
        while True:
            item = await connection.next_item(heartbeat)
            if isinstance(item, CloseRequest):
                await websocket.close(item.code, item.reason)
                return
            if connection.silent:
                continue
            if isinstance(item, bytes):
                await websocket.send_bytes(item)
                if len(item) > 1:  # heartbeats are not frames; a frame starts with its count
                    connection.log.frames_sent += 1
                    connection.log.ticks_sent += int.from_bytes(item[:2], "big")
            else:
                await websocket.send_text(item)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"

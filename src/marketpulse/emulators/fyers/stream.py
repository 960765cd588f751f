"""The emulated HSM data socket at ``/`` and ``/hsm/v1-5/prod``: a reader and a writer.

Login is in-band, so every upgrade is accepted (as Fyers does: the URL carries nothing); the
auth request decides. After an auth ``'N'`` the socket is closed (code 1008). The writer sends
queued frames; the ``silence_after`` fault stops it sending anything while the socket stays open.
Client pings (``00 01 0B``) are counted and never answered, like the real server (spec §2.6).
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.fyers.core import CloseRequest, EmulatedConnection, FyersEmulator

router = APIRouter()


@router.websocket("/")
@router.websocket("/hsm/v1-5/prod")
async def data_socket(websocket: WebSocket) -> None:
    emulator: FyersEmulator = websocket.app.state.emulator
    await websocket.accept()
    connection = emulator.open_connection()
    writer = asyncio.create_task(_write(websocket, connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None and message.get("text") is not None:
                data = message["text"].encode()
            if data is not None:
                connection.handle(data)
    except Exception as exc:  # a vanished client ends its connection, nothing else
        connection.log.closed = connection.log.closed or f"read failed: {exc!r}"
    finally:
        emulator.forget(connection)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _write(websocket: WebSocket, connection: EmulatedConnection) -> None:
    try:
        while True:
            item = await connection.outbox.get()
            if isinstance(item, CloseRequest):
                await websocket.close(item.code, item.reason)
                return
            if connection.silent:
                continue
            await websocket.send_bytes(item)
            connection.log.messages_sent += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"

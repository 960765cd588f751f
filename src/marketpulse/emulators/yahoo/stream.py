"""The emulated streamer socket at ``/`` (any query; ``?version=2`` selects the JSON envelope).

Yahoo needs no authentication. Server-side WebSocket pings are left to the ASGI server, and the
server answers the client's pings (uvicorn does), which is what the feed's watchdog relies on.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.yahoo.core import CloseRequest, EmulatedConnection, YahooEmulator

router = APIRouter()


@router.websocket("/")
async def streamer(websocket: WebSocket) -> None:
    emulator: YahooEmulator = websocket.app.state.emulator
    legacy = websocket.query_params.get("version") != "2"
    await websocket.accept()
    connection = emulator.open_connection(str(websocket.url.query), legacy)
    writer = asyncio.create_task(_write(websocket, connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", "replace")
            connection.handle(text)
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
                # code None: a close frame without a status (the client sees 1005), as Yahoo
                # closes on a malformed request.
                await websocket.send({"type": "websocket.close", "code": item.code,
                                      "reason": item.reason})  # fmt: skip
                return
            if connection.silent:
                continue
            await websocket.send_text(item)
            connection.log.frames_sent += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"

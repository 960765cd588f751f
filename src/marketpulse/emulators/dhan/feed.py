"""The emulated feed sockets: the v2 market feed at ``/`` and the 20-level depth socket at
``/twentydepth``.

Dhan accepts every upgrade and reports bad credentials in-band: the emulator does the same
(a disconnect packet with the reason, then a close). Server-side WebSocket pings come from the
ASGI server, because an ASGI app cannot send ping frames: ``build_app`` puts Dhan's keep-alive
(ping every 10 s, close after 30 s more without a pong) in ``app.state.server_options``, which
:func:`marketpulse.httpserver.serving` applies.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.dhan.core import CloseRequest, DhanEmulator, EmulatedConnection
from marketpulse.feeds.dhan import wire

router = APIRouter()


@router.websocket("/")
async def market_feed(websocket: WebSocket) -> None:
    await _serve(websocket, depth=False)


@router.websocket("/twentydepth")
async def depth_feed(websocket: WebSocket) -> None:
    await _serve(websocket, depth=True)


async def _serve(websocket: WebSocket, depth: bool) -> None:
    emulator: DhanEmulator = websocket.app.state.emulator
    query = websocket.query_params
    client_id = query.get("clientId")
    await websocket.accept()
    problem = emulator.access_problem(client_id, query.get("token"))
    if problem is None and query.get("authType", "2") != "2":
        problem = 808
    if problem is not None:
        emulator.rejected.append(problem)
        packet = wire.encode_depth_disconnect(problem) if depth else wire.encode_disconnect(problem)
        with contextlib.suppress(Exception):
            await websocket.send_bytes(packet)
            await websocket.close(1000, wire.describe_disconnect(problem)[:120])
        return
    assert client_id is not None
    connection = emulator.open_connection(client_id, depth)
    writer = asyncio.create_task(_write(websocket, connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is not None:
                connection.handle(text)
            # binary frames (the SDK's 83-byte v1 disconnect trailer) are ignored
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
            connection.log.frames_sent += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"

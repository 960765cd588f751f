"""The emulated broadcast socket at ``/broadcast/user/v1/data``.

The public-access token comes in the ``x_jwt_token`` query parameter; an unknown or expired one
is refused before the upgrade with HTTP 401 (too many sockets per token: 429), as spec §13 asks.
Server-side WebSocket pings are left to the ASGI server (an ASGI app cannot send ping frames).
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

# Generic denial-log quieting (to move to a shared emulator module).
from marketpulse.emulators.denials import deny
from marketpulse.emulators.paytm.core import CloseRequest, EmulatedConnection, PaytmEmulator

router = APIRouter()
PATH = "/broadcast/user/v1/data"


@router.websocket(PATH)
async def broadcast(websocket: WebSocket) -> None:
    emulator: PaytmEmulator = websocket.app.state.emulator
    token = websocket.query_params.get("x_jwt_token")
    problem = emulator.feed_token_problem(token)
    if problem is not None:
        emulator.rejected.append(problem)
        message = "Unauthorized: invalid or expired token" if problem == 401 else (
            "Too Many Requests: connection limit reached"
        )  # fmt: skip
        await deny(websocket, problem, message)
        return
    assert token is not None
    await websocket.accept()
    connection = emulator.open_connection(token)
    writer = asyncio.create_task(_write(websocket, connection))
    try:
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
            text = received.get("text")
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
    try:
        while True:
            item = await connection.outbox.get()
            if isinstance(item, CloseRequest):
                await websocket.close(item.code, item.reason)
                return
            if connection.silent:
                continue
            if isinstance(item, str):
                await websocket.send_text(item)
            else:
                await websocket.send_bytes(item)
            connection.log.frames_sent += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send
        connection.log.closed = connection.log.closed or f"write failed: {exc!r}"

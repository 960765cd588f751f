"""The emulated feed sockets: the v2 market feed at ``/`` and the 20-level depth socket at
``/twentydepth``.

Dhan accepts every upgrade and reports bad credentials in-band: the emulator does the same
(a disconnect packet with the reason, then a close). Server-side WebSocket pings come from the
ASGI server, because an ASGI app cannot send ping frames: ``build_app`` puts Dhan's keep-alive
(ping every 10 s, close after 30 s more without a pong) in ``app.state.server_options``, which
:func:`marketpulse.httpserver.serving` applies.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.dhan.core import DhanEmulator
from marketpulse.emulators.socket_loop import frame_writer, serve_socket, text_requests
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

    # binary frames (the SDK's 83-byte v1 disconnect trailer) are ignored
    read = text_requests(connection.handle)
    write = frame_writer(websocket, connection.log)
    await serve_socket(websocket, connection, read=read, write=write, forget=emulator.forget)

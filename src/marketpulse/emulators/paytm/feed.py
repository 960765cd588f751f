"""The emulated broadcast socket at ``/broadcast/user/v1/data``.

The public-access token comes in the ``x_jwt_token`` query parameter; an unknown or expired one
is refused before the upgrade with HTTP 401 (too many sockets per token: 429), as spec §13 asks.
Server-side WebSocket pings are left to the ASGI server (an ASGI app cannot send ping frames).
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.denials import deny
from marketpulse.emulators.paytm.core import PaytmEmulator
from marketpulse.emulators.socket_loop import frame_writer, serve_socket, text_requests

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

    read = text_requests(connection.handle)
    write = frame_writer(websocket, connection.log)
    await serve_socket(websocket, connection, read=read, write=write, forget=emulator.forget)

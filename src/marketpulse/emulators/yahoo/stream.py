"""The emulated streamer socket at ``/`` (any query; ``?version=2`` selects the JSON envelope).

Yahoo needs no authentication. Server-side WebSocket pings are left to the ASGI server, and the
server answers the client's pings (uvicorn does), which is what the feed's watchdog relies on.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.socket_loop import any_frame_as_text, frame_writer, serve_socket
from marketpulse.emulators.yahoo.core import YahooEmulator

router = APIRouter()


@router.websocket("/")
async def streamer(websocket: WebSocket) -> None:
    emulator: YahooEmulator = websocket.app.state.emulator
    legacy = websocket.query_params.get("version") != "2"
    await websocket.accept()
    connection = emulator.open_connection(str(websocket.url.query), legacy)

    read = any_frame_as_text(connection.handle)
    write = frame_writer(websocket, connection.log)
    await serve_socket(websocket, connection, read=read, write=write, forget=emulator.forget)

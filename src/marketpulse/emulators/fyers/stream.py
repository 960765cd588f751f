"""The emulated HSM data socket at ``/`` and ``/hsm/v1-5/prod``: a reader and a writer.

Login is in-band, so every upgrade is accepted (as Fyers does: the URL carries nothing); the
auth request decides. After an auth ``'N'`` the socket is closed (code 1008). The writer sends
queued frames; the ``silence_after`` fault stops it sending anything while the socket stays open.
Client pings (``00 01 0B``) are counted and never answered, like the real server (spec §2.6).
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.fyers.core import FyersEmulator
from marketpulse.emulators.socket_loop import Message, serve_socket

router = APIRouter()


@router.websocket("/")
@router.websocket("/hsm/v1-5/prod")
async def data_socket(websocket: WebSocket) -> None:
    emulator: FyersEmulator = websocket.app.state.emulator
    await websocket.accept()
    connection = emulator.open_connection()

    def read(message: Message) -> None:
        data = message.get("bytes")
        if data is None and message.get("text") is not None:
            data = message["text"].encode()
        if data is not None:
            connection.handle(data)

    async def write(item: bytes) -> None:
        await websocket.send_bytes(item)
        connection.log.messages_sent += 1

    await serve_socket(websocket, connection, read=read, write=write, forget=emulator.forget)

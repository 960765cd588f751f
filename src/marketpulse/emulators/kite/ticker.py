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

from fastapi import APIRouter, WebSocket

from marketpulse.emulators.kite.core import KiteEmulator
from marketpulse.emulators.socket_loop import any_frame_as_text, serve_socket
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
    read = any_frame_as_text(connection.handle)

    async def write(item: bytes | str) -> None:
        if isinstance(item, str):
            await websocket.send_text(item)
            return
        await websocket.send_bytes(item)
        if len(item) > 1:  # heartbeats are not frames; a frame starts with its count
            connection.log.frames_sent += 1
            connection.log.ticks_sent += int.from_bytes(item[:2], "big")

    await serve_socket(websocket, connection, read=read, write=write, forget=emulator.forget)

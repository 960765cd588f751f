"""How a broker's WebSocket ended, in words, for the supervisor's reconnect messages."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed


def close_reason(exc: ConnectionClosed) -> str:
    """``code 1008, token expired`` from the close frame the server sent, if it sent one."""
    received = exc.rcvd
    if received is None:
        return "no close frame"
    return f"code {received.code}" + (f", {received.reason}" if received.reason else "")


def close_state(ws: ClientConnection) -> str:
    """The same for a connection found closed without an exception in hand."""
    code = ws.close_code
    if code is None:
        return "closed"
    return f"code {code}" + (f", {ws.close_reason}" if ws.close_reason else "")

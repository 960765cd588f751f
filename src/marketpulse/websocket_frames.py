"""WebSocket text frames encoded once and written straight to the connection's transport.

The ASGI path costs about a dozen Python calls per message and per client (Starlette's
``send_text``, uvicorn's ``send``, websockets' frame object and serialisation, one
``transport.write``), which made the API role's fan-out the largest share of its CPU. A
server-to-client text frame without extensions is two to ten header bytes and the UTF-8
payload, so the hub builds the frames for everything a client has queued and writes them with
one ``transport.write``.

:class:`FrameWriterProtocol` is uvicorn's ``websockets-sansio`` protocol with one addition: the
connection's scope carries ``scope["extensions"][EXTENSION]["write"]``, a function that writes
already-encoded frames and returns False — writing nothing — whenever the ordinary ASGI send
must be used instead: the transport is applying back-pressure (so the slow-client checks see a
waiting send), the connection is closing, or an extension (permessage-deflate) was negotiated,
which must transform every frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

EXTENSION: Final = "marketpulse.websocket.frames"

FrameWriter = Callable[[bytes], bool]

_TEXT_FIN: Final = 0x81  # FIN + opcode 1 (text); server frames are never masked (RFC 6455 §5.1)


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame around ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT_FIN, size)) + payload
    if size < 65_536:
        return bytes((_TEXT_FIN, 126)) + size.to_bytes(2, "big") + payload
    return bytes((_TEXT_FIN, 127)) + size.to_bytes(8, "big") + payload


def text_frames(messages: Iterable[str]) -> bytes:
    """Each message as its own text frame, back to back: what one write sends."""
    return b"".join([text_frame(message.encode()) for message in messages])


def frame_writer(scope: object) -> FrameWriter | None:
    """The connection's frame writer when the server provides one (ours does), else None."""
    if not isinstance(scope, dict):
        return None
    extension = scope.get("extensions", {}).get(EXTENSION)
    return None if extension is None else extension.get("write")


class FrameWriterProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol that also offers :data:`EXTENSION`."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][EXTENSION] = {"write": self.write_frames}

    def write_frames(self, frames: bytes) -> bool:
        """Write encoded frames now, or return False to have the caller use the ASGI send."""
        if (
            not self.writable.is_set()
            or self.close_sent
            or self.disconnected
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frames)
        return True

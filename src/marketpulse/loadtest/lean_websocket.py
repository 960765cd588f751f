"""A lean WebSocket client for the load test's client processes: frames parsed in place.

The harness runs its 100 clients on the same two cores as the service it measures, so what a
client spends per message is taken from the service and shows up as latency. The ``websockets``
client costs about 8 µs per message (a frame object, an assembler queue and a task switch per
message); this one parses frames straight out of ``data_received`` and hands each complete text
message, with the time its bytes arrived, to a callback. It speaks what the harness needs of
RFC 6455 as a client: the upgrade handshake (with ``Sec-WebSocket-Accept`` checked), masked text
frames out, text and continuation frames in, permessage-deflate when the server accepts the
offer, ping → pong, and the closing handshake. It is not a general-purpose client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import zlib
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MAX_HEADER = 64 * 1024

OnText = Callable[[str, int], None]
"""Called with each complete text message and ``time.time_ns()`` when its last bytes arrived."""


class HandshakeError(OSError):
    """The server did not switch protocols as RFC 6455 requires."""


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame: clients must mask every frame (RFC 6455 §5.3)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65_536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    repeated = (key * (size // 4 + 1))[:size]
    body = (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        size, "little"
    )
    return header + key + body


class LeanWebSocket(asyncio.Protocol):
    """One client connection; use :func:`connect`."""

    def __init__(self, on_text: OnText, *, key: bytes, deflate_offered: bool) -> None:
        self.on_text = on_text
        self._key = key
        self._deflate_offered = deflate_offered
        self._inflate: zlib._Decompress | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._open = False
        self._fragments: list[bytes] = []
        self._compressed = False
        self._text = False
        self._reset_each_message = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self._buffer += data
        if not self._open:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEADER:
                    self._fail(HandshakeError("handshake response headers too large"))
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            try:
                self._accept(head)
            except HandshakeError as exc:
                self._fail(exc)
                return
        self._parse(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("connection closed in the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self) -> None:
        """Until the connection is gone (cancelling this wait leaves the connection alone)."""
        await asyncio.shield(self.closed)

    # sending

    def send_text(self, text: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(masked_frame(_OP_TEXT, text.encode()))

    def close(self, code: int = 1000) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(masked_frame(_OP_CLOSE, code.to_bytes(2, "big")))
            self._transport.close()

    # internals

    def _accept(self, head: str) -> None:
        status, *lines = head.split("\r\n")
        if status.split(" ", 2)[1:2] != ["101"]:
            raise HandshakeError(f"server answered {status!r}, not 101 Switching Protocols")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise HandshakeError("wrong Sec-WebSocket-Accept")
        extensions = headers.get("sec-websocket-extensions", "")
        if extensions.startswith("permessage-deflate"):
            if not self._deflate_offered:
                raise HandshakeError("server chose permessage-deflate, which was not offered")
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            self._reset_each_message = "server_no_context_takeover" in extensions
        self._open = True
        self.opened.set_result(None)

    def _parse(self, now: int) -> None:
        buffer = self._buffer
        size = len(buffer)
        position = 0
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            if second & 0x80:
                self._fail(HandshakeError("the server masked a frame (RFC 6455 §5.1)"))
                return
            end = position + header + length
            if end > size:
                break
            self._frame(first, bytes(buffer[position + header : end]), now)
            position = end
        del buffer[:position]

    def _frame(self, first: int, payload: bytes, now: int) -> None:
        opcode = first & 0x0F
        if opcode in (_OP_TEXT, _OP_BINARY):
            self._fragments = [payload]
            self._compressed = bool(first & 0x40)
            self._text = opcode == _OP_TEXT
        elif opcode == _OP_CONT:
            self._fragments.append(payload)
        elif opcode == _OP_PING:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(masked_frame(_OP_PONG, payload))
            return
        elif opcode == _OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = payload[2:].decode("utf-8", "replace")
            self.close(self.close_code if self.close_code != 1005 else 1000)
            return
        else:
            return
        if not first & 0x80:
            return
        message = b"".join(self._fragments) if len(self._fragments) > 1 else self._fragments[0]
        self._fragments = []
        if self._compressed and self._inflate is not None:
            message = self._inflate.decompress(message + _DEFLATE_TAIL)
            if self._reset_each_message:
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        if self._text:
            self.on_text(message.decode(), now)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()


async def connect(
    url: str, on_text: OnText, *, deflate: bool, open_timeout: float = 60.0
) -> LeanWebSocket:
    """Open ``ws://host:port/path`` and complete the handshake; ``deflate`` offers
    permessage-deflate as browsers do."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"only ws:// URLs are supported, not {url!r}")
    key = base64.b64encode(os.urandom(16))
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(
            lambda: LeanWebSocket(on_text, key=key, deflate_offered=deflate),
            parts.hostname,
            parts.port or 80,
        ),
        open_timeout,
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{offer if deflate else ''}\r\n"
    )
    assert protocol._transport is not None
    protocol._transport.write(request.encode())
    await asyncio.wait_for(protocol.opened, open_timeout)
    return protocol

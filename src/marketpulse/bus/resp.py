"""Redis commands as raw RESP, and one round trip for many of them.

The publisher writes two or three commands per tick; building them through a client pipeline
costs several times more than the tick itself. RESP is trivial to produce from bytes we already
have (the tick JSON), so the hot path packs commands directly and sends one buffer per chunk,
then reads exactly as many replies. Pure packing here; the I/O is in :class:`RespConnection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError, ResponseError

log = logging.getLogger(__name__)

CRLF: Final = b"\r\n"


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*parts: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


def command_prefix(count: int, *leading: bytes) -> bytes:
    """The start of a ``count``-part command whose first parts are fixed, for appending the
    variable parts with :func:`bulk` on the hot path."""
    return b"*%d\r\n" % count + b"".join(bulk(p) for p in leading)


class RespConnection:
    """One connection of our own for bulk writes: send a buffer of packed commands, then parse
    all replies from the received bytes in one go (hiredis), without the per-reply await and
    timer a general client pays. Opened lazily; any failure closes it so the next call
    reconnects."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, io_timeout: float = 30.0) -> None:
        self._params = parse_url(url)
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(replyError=ResponseError)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        params = self._params
        if "path" in params:
            opening = asyncio.open_unix_connection(params["path"])
        else:
            tls = params.get("connection_class") is SSLConnection
            opening = asyncio.open_connection(
                params.get("host", "127.0.0.1"), params.get("port", 6379), ssl=tls or None
            )
        reader, writer = await asyncio.wait_for(opening, self._connect_timeout)
        self._reader, self._writer = reader, writer
        self._parser = hiredis.Reader(replyError=ResponseError)
        setup: list[bytes] = []
        if params.get("password") is not None:
            user = params.get("username")
            auth = (user.encode(),) if user else ()
            setup.append(command(b"AUTH", *auth, str(params["password"]).encode()))
        if params.get("db"):
            setup.append(command(b"SELECT", str(params["db"]).encode()))
        if setup:
            replies = await self._roundtrip(b"".join(setup), len(setup))
            failed = [r for r in replies if isinstance(r, ResponseError)]
            if failed:
                await self.close()
                raise ConnectionError(f"Redis refused the connection set-up: {failed[0]}")
        return reader, writer

    async def _roundtrip(self, payload: bytes, replies: int) -> list[object]:
        await self._send(payload)
        return await self._receive(replies)

    async def _send(self, payload: bytes) -> None:
        assert self._writer is not None
        self._writer.write(payload)
        await self._writer.drain()

    async def _receive(self, replies: int) -> list[object]:
        assert self._reader is not None
        parser = self._parser
        out: list[object] = []
        # Replies of a later buffer may already sit in the parser (pipelining): take only ours.
        while len(out) < replies:
            reply = parser.gets()
            if reply is not False:
                out.append(reply)
                continue
            data = await self._reader.read(1 << 16)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)
        return out

    async def send(self, payload: bytes) -> None:
        """Send packed commands without waiting for their replies (read them with
        :meth:`receive`, in order): the caller can build the next buffer meanwhile."""
        try:
            async with asyncio.timeout(self._io_timeout):
                if self._writer is None:
                    await self._open()
                await self._send(payload)
        except BaseException:
            await self.close()
            raise

    async def receive(self, replies: int) -> int:
        """Read the replies of one earlier :meth:`send`; returns how many were errors (logged
        once per call with the first message)."""
        try:
            async with asyncio.timeout(self._io_timeout):  # a stalled server is a failure too
                results = await self._receive(replies)
        except BaseException:
            await self.close()
            raise
        errors = [r for r in results if isinstance(r, ResponseError)]
        if errors:
            log.error("%d of %d Redis commands failed, first: %s", len(errors), replies, errors[0])
        return len(errors)

    async def execute(self, payload: bytes, replies: int) -> int:
        """:meth:`send` then :meth:`receive`: one round trip."""
        await self.send(payload)
        return await self.receive(replies)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

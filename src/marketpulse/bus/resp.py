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
from typing import TYPE_CHECKING, Final

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError, ResponseError

if TYPE_CHECKING:
    from marketpulse.bus.cluster import ClusterRouter

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
    reconnects.

    Against a Redis Cluster (``cluster=True``, or ``None`` and the server says
    ``cluster_enabled:1``) the same calls go through a :class:`~marketpulse.bus.cluster.
    ClusterRouter`: each command reaches the master owning its key's slot, so callers pack
    commands exactly as for a single server."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        io_timeout: float = 30.0,
        cluster: bool | None = None,
    ) -> None:
        self._params = parse_url(url)
        self._cluster = cluster
        self._router: ClusterRouter | None = None
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

    def at(self, host: str, port: int) -> RespConnection:
        """A single-server connection to ``host:port`` with this one's credentials, TLS and
        timeouts (a cluster node)."""
        node = RespConnection(
            "redis://", connect_timeout=self._connect_timeout, io_timeout=self._io_timeout,
            cluster=False,
        )  # fmt: skip
        node._params = {**self._params, "host": host, "port": port}
        node._params.pop("path", None)
        return node

    @property
    def host(self) -> str:
        return str(self._params.get("host", "127.0.0.1"))

    @property
    def port(self) -> int:
        return int(self._params.get("port", 6379))

    async def _route(self) -> ClusterRouter | None:
        """Decide once whether this is a cluster (asking the server when not told)."""
        if self._cluster is None:
            info = await self.roundtrip(command(b"INFO", b"cluster"), 1)
            self._cluster = isinstance(info[0], bytes) and b"cluster_enabled:1" in info[0]
            await self.close()
        if self._cluster and self._router is None:
            from marketpulse.bus.cluster import ClusterRouter

            self._router = ClusterRouter(self)
        return self._router

    async def send(self, payload: bytes) -> None:
        """Send packed commands without waiting for their replies (read them with
        :meth:`receive`, in order): the caller can build the next buffer meanwhile."""
        if self._cluster is not False and (router := await self._route()) is not None:
            await router.send(payload)
            return
        await self._send_node(payload)

    async def _send_node(self, payload: bytes) -> None:
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
        if self._router is not None:
            return await self._router.receive(replies)
        results = await self.receive_replies(replies)
        errors = [r for r in results if isinstance(r, ResponseError)]
        if errors:
            log.error("%d of %d Redis commands failed, first: %s", len(errors), replies, errors[0])
        return len(errors)

    async def receive_replies(self, replies: int) -> list[object]:
        """The replies of one earlier :meth:`send` as parsed (errors as ``ResponseError``)."""
        try:
            async with asyncio.timeout(self._io_timeout):  # a stalled server is a failure too
                return await self._receive(replies)
        except BaseException:
            await self.close()
            raise

    async def roundtrip(self, payload: bytes, replies: int) -> list[object]:
        """Send ``payload`` to this server and return its ``replies`` replies."""
        await self._send_node(payload)
        return await self.receive_replies(replies)

    async def execute(self, payload: bytes, replies: int) -> int:
        """:meth:`send` then :meth:`receive`: one round trip."""
        await self.send(payload)
        return await self.receive(replies)

    async def close(self) -> None:
        if self._router is not None:
            await self._router.close()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

"""The socket half of a streaming broker connection, written once for every broker.

Each broker connection (Dhan, Paytm, Yahoo, Fyers, Angel One) reads its WebSocket the same way:
one task moves frames, stamped with their receive time, into a bounded inbox (so ``receive``
hands the supervisor everything that arrived meanwhile as one batch, and a slow publisher makes
TCP push back on the broker instead of growing memory); a closed or failed socket becomes the
error ``receive`` raises once the inbox is drained; a keep-alive task pings on a timer and
counts each pong as proof of life, an empty batch that satisfies the supervisor's heartbeat
watchdog on a quiet market. :class:`WebSocketSession` is that skeleton; the broker's connection
keeps only its protocol: which requests to send, how to decode, and which heartbeat it speaks.
Opening the socket is shared too (:func:`open_websocket`): the broker says what a refused
upgrade and an unreachable host mean in its own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, Generic, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from marketpulse.feeds.base import FeedConnectionError
from marketpulse.feeds.websocket_close import close_reason, close_state

Data = bytes | str
Frame = tuple[int, Data]
"""``(ts_recv ns, frame)``: what most connections keep in their inbox."""

MAX_MESSAGE_BYTES: Final = 1 << 20
"""The largest frame a broker socket accepts unless its connection says otherwise."""

INBOX_LIMIT: Final = 20_000
"""Frames held between the socket and the supervisor before the reader stops reading (and TCP
pushes back on the broker)."""

E = TypeVar("E")


def stamped(ts_recv: int, frame: Data) -> Frame:
    """The plain inbox entry: a frame with its receive time."""
    return ts_recv, frame


async def send_or_fail(ws: ClientConnection, message: Data, what: str) -> None:
    """Send ``message``; a closed socket becomes a transient error (``{what} closed (...)``)."""
    try:
        await ws.send(message)
    except ConnectionClosed as exc:
        raise FeedConnectionError(f"{what} closed ({close_reason(exc)})") from exc


class WebSocketSession(Generic[E]):
    """A broker socket's reader, inbox, keep-alive and background tasks.

    ``name`` is the feed's name: it starts every error message (``paytm: socket closed (code
    1006)``) and every task name (``paytm:reader``). ``entry`` turns a receive time and a frame
    into what the inbox keeps (:func:`stamped` unless the connection reads more than one socket
    and must tell their frames apart). The reader of ``ws`` starts at once; a connection adds
    its keep-alive and any other task with :meth:`start`.
    """

    def __init__(
        self,
        ws: ClientConnection,
        name: str,
        entry: Callable[[int, Data], E],
        *,
        limit: int = INBOX_LIMIT,
    ) -> None:
        self.ws = ws
        self.name = name
        self._entry = entry
        self._limit = limit
        self._inbox: list[E] = []
        self._pongs = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.failure: BaseException | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.start(self.read(ws, "socket"), "reader")

    def start(self, job: Coroutine[Any, Any, None], role: str) -> None:
        """Run ``job`` until the session closes, as task ``{name}:{role}``."""
        self.tasks.append(asyncio.create_task(job, name=f"{self.name}:{role}"))

    async def frames(self) -> list[E]:
        """Everything that arrived since the last call, waiting until something did.

        An empty list means only a pong came: the socket is alive with nothing to decode. Once
        the inbox is empty, a socket's end is raised as :class:`FeedConnectionError`.
        """
        while not self._inbox and not self._pongs:
            if self.failure is not None:
                raise self.failure
            self._arrived.clear()
            await self._arrived.wait()
        self._pongs = 0
        frames, self._inbox = self._inbox, []
        self._room.set()
        return frames

    def alive(self) -> None:
        """Count a proof of life (a pong) that ``frames`` reports as an empty batch."""
        self._pongs += 1
        self._arrived.set()

    async def read(
        self, ws: ClientConnection, what: str, entry: Callable[[int, Data], E] | None = None
    ) -> None:
        """Socket → inbox with receive times; a closed socket becomes the failure.

        ``what`` names the socket in that failure (``socket``, ``depth socket``); ``entry``
        replaces the session's for a second socket whose frames must be told apart.
        """
        entry = entry or self._entry
        limit = self._limit
        try:
            async for message in ws:
                self._inbox.append(entry(time.time_ns(), message))
                self._arrived.set()
                if len(self._inbox) >= limit:
                    self._room.clear()
                    await self._room.wait()
            self.failure = FeedConnectionError(f"{self.name}: {what} closed ({close_state(ws)})")
        except ConnectionClosed as exc:
            self.failure = FeedConnectionError(f"{self.name}: {what} closed ({close_reason(exc)})")
        except Exception as exc:  # any other socket failure ends this connection
            self.failure = FeedConnectionError(f"{self.name}: {what} failed: {exc!r}")
        finally:
            self._arrived.set()

    async def send(self, message: Data, ws: ClientConnection | None = None) -> None:
        """Send on ``ws`` (default: the session's socket); closed → ``{name}: socket closed``."""
        await send_or_fail(ws or self.ws, message, f"{self.name}: socket")

    async def keep_alive(
        self,
        interval: float,
        *,
        heartbeat: Data | None = None,
        websocket_ping: bool = True,
        pong_timeout: float | None = None,
    ) -> None:
        """Every ``interval``: send the broker's own ``heartbeat`` frame if it has one, then a
        WebSocket ping whose pong is counted by :meth:`alive`.

        Without ``websocket_ping`` the broker answers ``heartbeat`` with a frame of its own,
        which reaches the inbox like any other. A pong later than ``pong_timeout`` is not waited
        for (the next round pings again); without one, a socket that stops answering leaves the
        heartbeat watchdog to notice. Ends quietly when the socket closes (the reader reports it).
        """
        ws = self.ws
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(interval)
                if heartbeat is not None:
                    await ws.send(heartbeat)
                if websocket_ping:
                    pong = await ws.ping()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pong_timeout):
                            await pong
                            self.alive()

    async def stop(self) -> None:
        """Cancel the session's tasks and wait for them (the socket stays open)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop the tasks, then close the socket."""
        await self.stop()
        await self.ws.close()


def require_websocket_url(url: str, setting: str | None = None) -> None:
    """Refuse a URL ``websockets`` cannot open, when the adapter is built rather than at the
    first connect; ``setting`` names where it came from (``PAYTM_WS_URL``)."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        where = f"{setting} " if setting else ""
        raise ValueError(f"{where}{url!r} is not a ws:// or wss:// URL") from exc


async def open_websocket(
    url: str,
    *,
    open_timeout: float,
    refused: Callable[[InvalidStatus], Exception],
    unreachable: Callable[[Exception], Exception],
    close_timeout: float = 2.0,
    compression: str | None = None,
    max_size: int = MAX_MESSAGE_BYTES,
    **options: Any,
) -> ClientConnection:
    """Open a broker socket, its failures turned into the broker's errors.

    ``refused`` builds the error for an upgrade answered with an HTTP status (a
    :class:`~marketpulse.feeds.base.FeedAuthError` for the statuses that mean bad credentials),
    ``unreachable`` the one for a network failure, a timeout or a broken handshake. Neither is
    chained to the original exception: broker URLs often carry the access token. The library's
    own pings are off (connections that need a heartbeat run :meth:`WebSocketSession.keep_alive`
    so that pongs reach the watchdog), a dead peer gets ``close_timeout`` to answer a close, and
    binary ticks are not compressed; ``options`` go to :func:`websockets.asyncio.client.connect`.
    """
    try:
        return await connect(
            url,
            open_timeout=open_timeout,
            ping_interval=None,
            close_timeout=close_timeout,
            compression=compression,
            max_size=max_size,
            **options,
        )
    except InvalidStatus as exc:
        raise refused(exc) from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise unreachable(exc) from None

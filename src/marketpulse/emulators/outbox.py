"""The queue between an emulated socket's protocol state and its writer task.

Every broker emulator (except Angel One's hub) keeps, per client socket, a bounded outbox of
frames that the market and the request handler fill and one writer task empties
(:func:`marketpulse.emulators.socket_loop.serve_socket`). What they share lives here: frames
beyond the bound are dropped and counted rather than buffered without limit (a slow client must
not grow the server's memory), a close is queued *after* what is already queued so the client
gets the frames sent before it, and the ``silence_after`` fault is judged against the time the
socket opened. What a broker sends, and how it words a close in its log, stays in its own
connection class.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from marketpulse.emulators.options import FaultClock


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Queued behind a connection's frames: the writer closes the socket with it.

    ``code`` ``None`` is a close frame without a status code (the client sees 1005), as Yahoo
    closes on a malformed request.
    """

    code: int | None
    reason: str


class SocketLog(Protocol):
    """What every connection log records, for tests and diagnostics."""

    frames_dropped: int
    closed: str | None


ItemT = TypeVar("ItemT")
LogT = TypeVar("LogT", bound=SocketLog)


class QueuedConnection(Generic[ItemT, LogT]):
    """One client socket's outbox, its log and its silence fault (no I/O here)."""

    def __init__(self, faults: FaultClock, log: LogT, capacity: int) -> None:
        self.log = log
        self.opened = faults.now()
        self.outbox: asyncio.Queue[ItemT | CloseRequest] = asyncio.Queue(capacity)
        self._faults = faults

    @property
    def silent(self) -> bool:
        """The ``silence_after`` fault: connected, but nothing is sent any more."""
        return self._faults.silent(self.opened)

    def send_raw(self, data: ItemT) -> None:
        """Queue one frame as it is (tests of malformed or unexpected server input)."""
        self._queue(data)

    def close(self, code: int | None, reason: str) -> None:
        """Ask the writer to close the socket after what is already queued."""
        self.log.closed = reason
        self._queue_close(code, reason)

    async def next_item(self) -> ItemT | CloseRequest:
        """What the writer sends next (a broker with heartbeats adds them here)."""
        return await self.outbox.get()

    def _queue(self, item: ItemT) -> None:
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.log.frames_dropped += 1

    def _make_room(self, items: int) -> None:
        """Drop the oldest queued frames until ``items`` more fit, so what must be sent last
        (a disconnect notice, the close) is never lost to a full outbox."""
        outbox = self.outbox
        with contextlib.suppress(asyncio.QueueEmpty):
            while outbox.qsize() > outbox.maxsize - items:
                outbox.get_nowait()

    def _queue_close(self, code: int | None, reason: str) -> None:
        self._make_room(1)
        self.outbox.put_nowait(CloseRequest(code, reason))

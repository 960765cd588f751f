"""The feed contract every broker implements, and the one supervisor that keeps feeds alive.

A broker adapter only knows how to open *one* connection and speak its protocol on it
(:class:`FeedConnection`). Everything that keeps a feed alive across a trading day is written
once, here, in :class:`FeedSupervisor`: exponential backoff with jitter, re-reading credentials
before every reconnect (tokens roll over daily), resubscribing every instrument in its mode, a
watchdog for sockets that are connected but silent, splitting subscriptions across connections
when a broker caps instruments per connection, and stopping with a clear message when the broker
rejects the credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from marketpulse.model import Mode, Tick

if TYPE_CHECKING:
    from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

TickSink = Callable[[list[Tick]], Awaitable[None]]
"""Where a supervisor delivers tick batches (the ingest publisher)."""


class FeedError(Exception):
    """Base class of feed errors."""


class FeedAuthError(FeedError):
    """The broker rejected the credentials (HTTP 401/403, expired token, ...).

    Fatal: retrying with the same credentials cannot help, so the supervisor stops the
    connection and reports this message, which must say what the user should do.
    """


class FeedLimitError(FeedError):
    """A request exceeds what the broker allows (instruments per connection × connections)."""


class FeedConnectionError(FeedError):
    """A transient failure; the supervisor reconnects."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One instrument the feed should stream, in the mode it was asked for."""

    token: str
    mode: Mode


class FeedConnection(ABC):
    """One live session with a broker (usually one WebSocket).

    ``receive`` returns the next decoded batch; an empty list is a heartbeat or a frame with
    nothing to report and still proves the socket is alive. Raise :class:`FeedAuthError` for a
    credential rejection and anything else for a transient failure.
    """

    @abstractmethod
    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None: ...

    @abstractmethod
    async def unsubscribe(self, tokens: Sequence[str]) -> None: ...

    @abstractmethod
    async def receive(self) -> list[Tick]: ...

    @abstractmethod
    async def close(self) -> None: ...


class FeedAdapter(ABC):
    """What a broker provides: its name, its limits and a way to open a connection."""

    name: str = "feed"
    max_instruments_per_connection: int | None = None
    max_connections: int = 1
    frame_tap: Callable[[int, bytes | str], None] | None = None
    """Set by ``marketpulse record --raw``: connections call it with ``(ts_recv_ns, frame)`` for
    every frame they receive, before decoding."""

    @abstractmethod
    async def connect(self, credentials: Any) -> FeedConnection:
        """Open and authenticate one connection with freshly read ``credentials``."""

    async def load_credentials(self) -> Any:
        """Read credentials anew (called before every connect); default: none needed."""
        return None

    def track(self, tracked: Sequence[TrackedSymbol]) -> None:
        """Learn what the instrument master says about the instruments about to be streamed.

        Called with the resolved subscriptions before subscribing. Brokers whose tokens are only
        unique within a segment (Angel One) need each token's exchange to subscribe it; the
        default ignores it.
        """
        del tracked

    def market_open(self, now: float) -> bool:
        """Whether silence at epoch second ``now`` is suspicious (data-stall watchdog)."""
        return True


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class ReconnectPolicy:
    """Backoff and watchdog timings (from settings)."""

    min_delay: float = 0.5
    max_delay: float = 30.0
    heartbeat_timeout: float = 15.0
    stall_timeout: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter, never below ``min_delay``."""
        ceiling = min(self.max_delay, self.min_delay * (2 ** min(attempt, 30)))
        return float(self.min_delay + rng.random() * (ceiling - self.min_delay))


@dataclass(slots=True)
class ConnectionStatus:
    """What ``/health`` and ``/stats`` report for one connection slot."""

    index: int
    state: ConnectionState = ConnectionState.CONNECTING
    instruments: int = 0
    connects: int = 0
    reconnects: int = 0
    last_frame_at: float | None = None
    last_tick_at: float | None = None
    last_error: str | None = None
    last_disconnect: str | None = None  # why the previous connection ended; kept after reconnect


@dataclass(frozen=True, slots=True)
class FeedOutage:
    """A connection that stopped delivering: from its last data to the first data after the
    reconnect (wall clock, epoch seconds), for the instruments it carried."""

    feed: str
    tokens: tuple[str, ...]
    start: float
    end: float
    reason: str


OutageSink = Callable[[FeedOutage], None]


@dataclass(slots=True)
class _Slot:
    status: ConnectionStatus
    subscriptions: dict[str, Mode] = field(default_factory=dict)
    connection: FeedConnection | None = None
    task: asyncio.Task[None] | None = None
    last_data_at: float | None = None  # wall clock of the last batch
    outage: tuple[float, str] | None = None  # (start, reason) while reconnecting


class FeedSupervisor:
    """Keeps one feed streaming: owns its subscriptions and its connections.

    Subscriptions are assigned to connection slots, each with at most
    ``adapter.max_instruments_per_connection`` instruments; a new slot (a new connection) is
    opened when one fills, up to ``adapter.max_connections``. Every slot runs its own
    connect → resubscribe → receive loop and reconnects independently.
    """

    def __init__(
        self,
        adapter: FeedAdapter,
        sink: TickSink,
        policy: ReconnectPolicy | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        on_outage: OutageSink | None = None,
    ) -> None:
        self.adapter = adapter
        self._on_outage = on_outage
        self.policy = policy or ReconnectPolicy()
        self._sink = sink
        self._rng = rng or random.Random()
        self._clock = clock
        self._slots: list[_Slot] = []
        self._running = False
        self.ticks_received = 0
        self.fatal_error: FeedAuthError | None = None

    # ------------------------------------------------------------------ subscriptions

    @property
    def subscriptions(self) -> dict[str, Mode]:
        merged: dict[str, Mode] = {}
        for slot in self._slots:
            merged.update(slot.subscriptions)
        return merged

    @property
    def capacity(self) -> int | None:
        per = self.adapter.max_instruments_per_connection
        return None if per is None else per * self.adapter.max_connections

    async def subscribe(self, tokens: Iterable[str], mode: Mode) -> None:
        """Stream ``tokens`` in ``mode`` (a token already subscribed switches mode).

        Raises :class:`FeedLimitError` before changing anything if the feed's total capacity
        would be exceeded.
        """
        wanted = list(dict.fromkeys(str(t) for t in tokens))
        current = self.subscriptions
        new = [t for t in wanted if t not in current]
        capacity = self.capacity
        if capacity is not None and len(current) + len(new) > capacity:
            raise FeedLimitError(
                f"{self.adapter.name}: subscribing {len(new)} more instruments would make "
                f"{len(current) + len(new)}, above the account limit of {capacity} "
                f"({self.adapter.max_instruments_per_connection} per connection × "
                f"{self.adapter.max_connections} connections)"
            )
        by_slot: dict[int, list[str]] = {}
        for token in wanted:
            slot = self._slot_of(token) or self._slot_with_room()
            slot.subscriptions[token] = mode
            slot.status.instruments = len(slot.subscriptions)
            by_slot.setdefault(slot.status.index, []).append(token)
        for index, slot_tokens in by_slot.items():
            await self._send(self._slots[index], "subscribe", slot_tokens, mode)

    async def unsubscribe(self, tokens: Iterable[str]) -> None:
        """Stop streaming ``tokens``; unknown tokens are ignored."""
        by_slot: dict[int, list[str]] = {}
        for token in (str(t) for t in tokens):
            slot = self._slot_of(token)
            if slot is not None:
                del slot.subscriptions[token]
                slot.status.instruments = len(slot.subscriptions)
                by_slot.setdefault(slot.status.index, []).append(token)
        for index, slot_tokens in by_slot.items():
            await self._send(self._slots[index], "unsubscribe", slot_tokens, None)

    def _slot_of(self, token: str) -> _Slot | None:
        for slot in self._slots:
            if token in slot.subscriptions:
                return slot
        return None

    def _slot_with_room(self) -> _Slot:
        per = self.adapter.max_instruments_per_connection
        for slot in self._slots:
            if per is None or len(slot.subscriptions) < per:
                return slot
        slot = _Slot(ConnectionStatus(index=len(self._slots)))
        self._slots.append(slot)
        if self._running:
            slot.task = asyncio.create_task(self._run_slot(slot), name=self._task_name(slot))
        return slot

    async def _send(self, slot: _Slot, action: str, tokens: list[str], mode: Mode | None) -> None:
        connection = slot.connection
        if connection is None or slot.status.state is not ConnectionState.CONNECTED:
            return  # applied on (re)connect
        try:
            if action == "subscribe" and mode is not None:
                await connection.subscribe(tokens, mode)
            else:
                await connection.unsubscribe(tokens)
        except Exception as exc:  # the receive loop notices the broken socket and reconnects
            log.warning(
                "%s: %s on connection %d failed: %s",
                self.adapter.name,
                action,
                slot.status.index,
                exc,
            )

    # ------------------------------------------------------------------ running

    @property
    def statuses(self) -> list[ConnectionStatus]:
        return [slot.status for slot in self._slots]

    @property
    def connected(self) -> bool:
        return any(s.status.state is ConnectionState.CONNECTED for s in self._slots)

    @property
    def last_tick_at(self) -> float | None:
        times = [s.status.last_tick_at for s in self._slots if s.status.last_tick_at]
        return max(times) if times else None

    def _task_name(self, slot: _Slot) -> str:
        return f"feed:{self.adapter.name}:{slot.status.index}"

    async def run(self) -> None:
        """Run until cancelled or until the broker rejects the credentials.

        Raises :class:`FeedAuthError` when the credentials are rejected, after every connection
        has stopped.
        """
        if not self._slots:
            self._slots.append(_Slot(ConnectionStatus(index=0)))
        self._running = True
        try:
            for slot in self._slots:
                slot.task = asyncio.create_task(self._run_slot(slot), name=self._task_name(slot))
            while True:
                tasks = [s.task for s in self._slots if s.task is not None]
                # A timeout so that slots opened meanwhile by subscribe() are watched too.
                done, _ = await asyncio.wait(
                    tasks, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        raise exc
                if all(s.task is not None and s.task.done() for s in self._slots):
                    return
        finally:
            self._running = False
            for slot in self._slots:
                if slot.task is not None and not slot.task.done():
                    slot.task.cancel()
            for slot in self._slots:
                if slot.task is not None:
                    await asyncio.gather(slot.task, return_exceptions=True)
                slot.status.state = (
                    ConnectionState.FAILED if self.fatal_error else ConnectionState.STOPPED
                )

    async def _run_slot(self, slot: _Slot) -> None:
        status = slot.status
        attempt = 0
        while True:
            status.state = ConnectionState.CONNECTING
            try:
                credentials = await self.adapter.load_credentials()
                connection = await self.adapter.connect(credentials)
            except FeedAuthError as exc:
                self._fail(status, exc)
                raise
            except Exception as exc:
                attempt = await self._backoff(status, attempt, f"connect failed: {exc!r}")
                continue
            slot.connection = connection
            status.connects += 1
            if status.connects > 1:
                status.reconnects += 1
            try:
                await self._resubscribe(slot, connection)
                status.state = ConnectionState.CONNECTED
                status.last_error = None
                attempt = 0
                await self._receive_loop(slot, connection)
            except FeedAuthError as exc:
                self._fail(status, exc)
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or repr(exc)
                if slot.outage is None and slot.last_data_at is not None:
                    slot.outage = (slot.last_data_at, reason)
                attempt = await self._backoff(status, attempt, reason)
            finally:
                slot.connection = None
                await _close_quietly(connection)

    async def _resubscribe(self, slot: _Slot, connection: FeedConnection) -> None:
        by_mode: dict[Mode, list[str]] = {}
        for token, mode in slot.subscriptions.items():
            by_mode.setdefault(mode, []).append(token)
        for mode, tokens in by_mode.items():
            await connection.subscribe(tokens, mode)

    async def _receive_loop(self, slot: _Slot, connection: FeedConnection) -> None:
        status = slot.status
        policy = self.policy
        now = self._clock()
        status.last_frame_at = now
        last_data = now
        while True:
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
                # just as receive() completes, and the feed then never stops.
                async with asyncio.timeout(policy.heartbeat_timeout):
                    batch = await connection.receive()
            except TimeoutError:
                raise FeedConnectionError(
                    f"no frame for {policy.heartbeat_timeout:.1f}s (heartbeat timeout)"
                ) from None
            now = self._clock()
            status.last_frame_at = now
            if batch:
                last_data = now
                status.last_tick_at = now
                slot.last_data_at = now
                if slot.outage is not None:
                    self._report_outage(slot, now)
                self.ticks_received += len(batch)
                await self._sink(batch)
            elif (
                slot.subscriptions
                and now - last_data > policy.stall_timeout
                and self.adapter.market_open(now)
            ):
                raise FeedConnectionError(
                    f"no ticks for {policy.stall_timeout:.1f}s while the market is open "
                    "(data stall)"
                )

    def _report_outage(self, slot: _Slot, now: float) -> None:
        assert slot.outage is not None
        start, reason = slot.outage
        slot.outage = None
        if self._on_outage is not None:
            self._on_outage(
                FeedOutage(self.adapter.name, tuple(slot.subscriptions), start, now, reason)
            )

    async def _backoff(self, status: ConnectionStatus, attempt: int, reason: str) -> int:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A cancellation that raced a timeout inside the connection (asyncio.timeout on
            # 3.11 can turn it into TimeoutError) must still stop the slot, not reconnect it:
            # the supervisor waits for its slots when it stops.
            raise asyncio.CancelledError
        status.state = ConnectionState.BACKOFF
        status.last_error = reason
        status.last_disconnect = reason
        delay = self.policy.delay(attempt, self._rng)
        log.warning(
            "%s connection %d: %s; reconnecting in %.2fs",
            self.adapter.name,
            status.index,
            reason,
            delay,
        )
        await asyncio.sleep(delay)
        return attempt + 1

    def _fail(self, status: ConnectionStatus, exc: FeedAuthError) -> None:
        status.state = ConnectionState.FAILED
        status.last_error = str(exc)
        self.fatal_error = exc
        log.error("%s: %s", self.adapter.name, exc)


async def _close_quietly(connection: FeedConnection) -> None:
    try:
        await connection.close()
    except Exception as exc:
        log.debug("closing a feed connection failed: %r", exc)

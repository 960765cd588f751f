"""The shared outbox of an emulated socket: bounded, drops counted, closes never lost."""

from __future__ import annotations

from dataclasses import dataclass

from marketpulse.emulators.options import FaultClock, Faults
from marketpulse.emulators.outbox import CloseRequest, QueuedConnection


@dataclass(slots=True)
class _Log:
    frames_dropped: int = 0
    closed: str | None = None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _connection(capacity: int = 3) -> QueuedConnection[str, _Log]:
    return QueuedConnection(FaultClock(Faults()), _Log(), capacity)


def test_frames_beyond_the_capacity_are_dropped_and_counted() -> None:
    connection = _connection(capacity=2)
    for frame in ("a", "b", "c", "d"):
        connection.send_raw(frame)
    assert [connection.outbox.get_nowait() for _ in range(2)] == ["a", "b"]
    assert connection.log.frames_dropped == 2


def test_a_close_on_a_full_outbox_drops_the_oldest_frame_and_comes_last() -> None:
    connection = _connection(capacity=3)
    for frame in ("a", "b", "c"):
        connection.send_raw(frame)
    connection.close(1011, "dropped")
    queued = [connection.outbox.get_nowait() for _ in range(3)]
    assert queued == ["b", "c", CloseRequest(1011, "dropped")]
    assert connection.log.closed == "dropped"


def test_make_room_frees_exactly_the_slots_asked_for() -> None:
    connection = _connection(capacity=4)
    for frame in ("a", "b", "c", "d"):
        connection.send_raw(frame)
    connection._make_room(2)
    assert connection.outbox.qsize() == 2
    assert connection.outbox.get_nowait() == "c"


def test_a_connection_goes_silent_after_silence_after_seconds() -> None:
    clock = _Clock()
    connection = QueuedConnection[str, _Log](
        FaultClock(Faults(silence_after=5.0), clock), _Log(), 10
    )
    assert not connection.silent
    clock.now += 5.0
    assert connection.silent


async def test_next_item_is_the_oldest_queued_item() -> None:
    connection = _connection()
    connection.send_raw("a")
    connection.send_raw("b")
    assert await connection.next_item() == "a"

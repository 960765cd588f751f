"""``marketpulse record``: stream a feed into a JSON-lines file (and optionally its raw frames).

The recorder runs the feed under the same supervisor as the service — reconnects, credential
re-reads and resubscription included — so a recording survives what a trading day throws at it.
Each line is one canonical tick (ARCHITECTURE §3 field names).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedSupervisor, ReconnectPolicy
from marketpulse.feeds.capture import FrameWriter
from marketpulse.feeds.registry import feed_spec
from marketpulse.model import Mode, Tick, encode_tick
from marketpulse.subscriptions import TrackedSymbol


@dataclass(slots=True)
class RecordSummary:
    ticks: int
    frames: int
    seconds: float
    reconnects: int


async def record(
    settings: Settings,
    feed: str,
    tracked: list[TrackedSymbol],
    mode: Mode,
    duration: float,
    out: Path,
    raw: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RecordSummary:
    """Record ``tracked`` instruments of ``feed`` for ``duration`` seconds."""
    adapter = feed_spec(feed).build(settings)
    adapter.track(tracked)
    writer = FrameWriter(raw) if raw is not None else None
    if writer is not None:
        adapter.frame_tap = writer.write
    symbols = {t.token: t.symbol for t in tracked if t.symbol}
    count = 0
    with out.open("wb") as sink_file:

        async def sink(batch: list[Tick]) -> None:
            nonlocal count
            lines = []
            for tick in batch:
                if tick.symbol is None:
                    tick.symbol = symbols.get(tick.token)
                lines.append(encode_tick(tick))
            sink_file.write(b"\n".join(lines) + b"\n")
            count += len(batch)

        policy = ReconnectPolicy(
            min_delay=settings.reconnect_min_seconds,
            max_delay=settings.reconnect_max_seconds,
            heartbeat_timeout=settings.feed_heartbeat_timeout_seconds,
            stall_timeout=settings.feed_stall_timeout_seconds,
        )
        supervisor = FeedSupervisor(adapter, sink, policy)
        await supervisor.subscribe([t.token for t in tracked], mode)
        started = time.monotonic()
        task = asyncio.create_task(supervisor.run())
        try:
            while time.monotonic() - started < duration:
                if task.done():
                    task.result()  # an auth failure ends the recording with its message
                    break
                await asyncio.sleep(min(0.5, max(0.0, duration - (time.monotonic() - started))))
                if on_progress is not None:
                    on_progress(count)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, FeedAuthError):
                await task
            if writer is not None:
                writer.close()
    return RecordSummary(
        ticks=count,
        frames=writer.frames if writer is not None else 0,
        seconds=time.monotonic() - started,
        reconnects=sum(s.reconnects for s in supervisor.statuses),
    )

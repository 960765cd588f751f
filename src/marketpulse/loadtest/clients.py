"""A WebSocket client process: many clients, each counting what it receives and how late.

``python -m marketpulse.loadtest.clients --url ws://… --channels spec.json --out result.json``
opens one connection per entry of ``spec.json`` (a list of channel lists), subscribes each to
its channels, prints ``READY`` once every subscription is acknowledged, then counts ``data``
messages. Latency is ``time.time_ns()`` when the message's bytes arrived minus the tick's
``ts_recv`` (stamped by the feed when the frame arrived; same machine, same clock), read with a
regex instead of a JSON parse. The connections are :mod:`lean_websocket`'s, which parse frames
in ``data_received``: the clients share the cores with the service they measure, so they must
stay cheap. ``stop`` on standard input (or EOF) ends the run once no
message has arrived for ``--quiet`` seconds; with ``--until-end`` each client ends at the text
``END`` instead (the bare-broadcast ceiling). Results: ``out`` (JSON) and ``out.lat`` (signed
64-bit nanosecond latencies, native order).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import json
import re
import sys
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from marketpulse import event_loop
from marketpulse.loadtest.lean_websocket import LeanWebSocket, connect

_TS_RECV = re.compile(r'"ts_recv":(\d+)')
_DATA_PREFIX = '{"message_type":"data"'
_BATCH_PREFIX = '{"message_type":"batch"'
END = "END"


@dataclass(slots=True)
class ClientTally:
    """What one connection saw."""

    channels: int
    received: int = 0
    first_ns: int = 0
    last_ns: int = 0
    end_ns: int = 0
    closed: str | None = None
    closed_ns: int = 0


class Worker:
    """Every client of this process and the counters they share (one event loop, no locks)."""

    def __init__(self, url: str, channels: list[list[str]], *, deflate: bool) -> None:
        self.url = url
        self.channels = channels
        self.deflate = deflate
        self.tallies = [ClientTally(len(c)) for c in channels]
        self.latencies = array.array("q")
        self.timeline: dict[int, int] = {}
        self.last_message = time.monotonic()
        self.ready = asyncio.Event()
        self._subscribed = 0

    async def run_client(self, index: int, until_end: bool) -> None:
        tally = self.tallies[index]
        wanted = self.channels[index]
        counted = False
        acknowledged = asyncio.Event()
        ended = asyncio.Event()
        pending_acks = len(wanted)
        latencies = self.latencies
        timeline = self.timeline
        find_all = _TS_RECV.findall

        def on_text(message: str, now: int) -> None:
            nonlocal pending_acks
            if message.startswith(_DATA_PREFIX):
                count = 1
            elif message.startswith(_BATCH_PREFIX):
                count = message.count(_DATA_PREFIX)  # every data message of the frame
            else:
                if pending_acks and "subscribed to" in message:
                    pending_acks -= 1
                    if not pending_acks:
                        acknowledged.set()
                elif until_end and message == END:
                    tally.end_ns = now
                    ended.set()
                return
            if pending_acks:  # data before every subscription is acknowledged is not counted
                return
            tally.received += count
            if not tally.first_ns:
                tally.first_ns = now
            tally.last_ns = now
            second = now // 1_000_000_000
            timeline[second] = timeline.get(second, 0) + count
            for stamp in find_all(message):
                latencies.append(now - int(stamp))
            self.last_message = time.monotonic()

        ws: LeanWebSocket | None = None
        try:
            ws = await connect(self.url, on_text, deflate=self.deflate)
            for channel in wanted:
                ws.send_text(json.dumps({"message_type": "subscribe", "channel": channel}))
            if wanted:
                await _first(acknowledged.wait(), ws.wait_closed())
            if ws.closed.done():
                raise ConnectionError("closed before every subscription was acknowledged")
            counted = True
            self._count_subscribed()
            await _first(ended.wait(), ws.wait_closed())
            if not tally.end_ns:  # the server closed
                code = ws.close_code
                tally.closed = f"closed {code if code is not None else 'abnormally'}" + (
                    f": {ws.close_reason}" if ws.close_reason else ""
                )
        except OSError as exc:
            tally.closed = f"connect failed: {exc}"
        finally:
            if ws is not None:
                ws.close()
            if tally.closed is not None:
                tally.closed_ns = time.time_ns()
            if not counted:  # a client that never subscribed must not hold up READY
                self._count_subscribed()

    def _count_subscribed(self) -> None:
        self._subscribed += 1
        if self._subscribed >= len(self.channels):
            self.ready.set()

    async def run(self, until_end: bool, quiet: float) -> None:
        tasks = [
            asyncio.create_task(self.run_client(i, until_end)) for i in range(len(self.channels))
        ]
        await self.ready.wait()
        print("READY", flush=True)
        if until_end:
            await asyncio.gather(*tasks)
            return
        await asyncio.to_thread(_wait_for_stop)
        while time.monotonic() - self.last_message < quiet:  # noqa: ASYNC110 - a quiet period
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def result(self) -> dict[str, Any]:
        return {
            "clients": [asdict(t) for t in self.tallies],
            "timeline": {str(k): v for k, v in sorted(self.timeline.items())},
        }


async def _first(*waits: Awaitable[object]) -> None:
    """Return when the first of ``waits`` is done; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _wait_for_stop() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m marketpulse.loadtest.clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--channels", type=Path, required=True, help="JSON: list of lists")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-deflate", action="store_true")
    parser.add_argument("--until-end", action="store_true")
    parser.add_argument("--quiet", type=float, default=1.0, help="idle seconds that end a run")
    args = parser.parse_args(argv)
    channels = json.loads(args.channels.read_text())
    worker = Worker(args.url, channels, deflate=not args.no_deflate)
    with contextlib.suppress(KeyboardInterrupt):
        gc.freeze()  # the measuring tool should not add collector pauses to what it measures
        event_loop.run(worker.run(args.until_end, args.quiet))
    args.out.with_suffix(".lat").write_bytes(worker.latencies.tobytes())
    args.out.write_text(json.dumps(worker.result()))


if __name__ == "__main__":
    main()

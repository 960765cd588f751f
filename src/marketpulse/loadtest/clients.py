"""A WebSocket client process: many clients, each counting what it receives and how late.

``python -m marketpulse.loadtest.clients --url ws://… --channels spec.json --out result.json``
opens one connection per entry of ``spec.json`` (a list of channel lists), subscribes each to
its channels, prints ``READY`` once every subscription is acknowledged, then counts ``data``
messages. Latency is ``time.time_ns()`` at receipt minus the tick's ``ts_recv`` (stamped by the
feed when the frame arrived; same machine, same clock), read with a regex instead of a JSON
parse so the clients stay cheap. ``stop`` on standard input (or EOF) ends the run once no
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

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
        try:
            async with connect(
                self.url, max_size=None, ping_interval=None, open_timeout=60,
                compression="deflate" if self.deflate else None,
            ) as ws:  # fmt: skip
                await self._subscribe(ws, wanted)
                counted = True
                self._count_subscribed()
                await self._receive(ws, tally, until_end)
                if not tally.end_ns:  # the server closed cleanly (1000/1001)
                    tally.closed = f"closed {ws.close_code}: {ws.close_reason or ''}"
        except ConnectionClosed as exc:
            tally.closed = f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}" + (
                f": {exc.rcvd.reason}" if exc.rcvd and exc.rcvd.reason else ""
            )
        except OSError as exc:
            tally.closed = f"connect failed: {exc}"
        finally:
            if tally.closed is not None:
                tally.closed_ns = time.time_ns()
            if not counted:  # a client that never subscribed must not hold up READY
                self._count_subscribed()

    async def _subscribe(self, ws: ClientConnection, wanted: list[str]) -> None:
        for channel in wanted:
            await ws.send(json.dumps({"message_type": "subscribe", "channel": channel}))
        acknowledged = 0
        while acknowledged < len(wanted):
            message = await ws.recv()
            if isinstance(message, str) and "subscribed to" in message:
                acknowledged += 1

    def _count_subscribed(self) -> None:
        self._subscribed += 1
        if self._subscribed >= len(self.channels):
            self.ready.set()

    async def _receive(self, ws: ClientConnection, tally: ClientTally, until_end: bool) -> None:
        latencies = self.latencies
        timeline = self.timeline
        find_all = _TS_RECV.findall
        async for message in ws:
            now = time.time_ns()
            if not isinstance(message, str):
                continue
            if message.startswith(_DATA_PREFIX):
                count = 1
            elif message.startswith(_BATCH_PREFIX):
                count = message.count(_DATA_PREFIX)  # every data message of the frame
            else:
                if until_end and message == END:
                    tally.end_ns = now
                    return
                continue
            tally.received += count
            if not tally.first_ns:
                tally.first_ns = now
            tally.last_ns = now
            second = now // 1_000_000_000
            timeline[second] = timeline.get(second, 0) + count
            for stamp in find_all(message):
                latencies.append(now - int(stamp))
            self.last_message = time.monotonic()

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
        asyncio.run(worker.run(args.until_end, args.quiet))
    args.out.with_suffix(".lat").write_bytes(worker.latencies.tobytes())
    args.out.write_text(json.dumps(worker.result()))


if __name__ == "__main__":
    main()

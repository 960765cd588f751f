"""Reference ceilings measured in the same run, on the same servers, with the same data.

* ``redis-benchmark`` XADD of a tick-sized entry (pipelined ``-P 64``): what Redis accepts
  with no client work at all. ``None`` when neither ``redis-benchmark`` nor
  ``valkey-benchmark`` is installed — reported as "not measured", never a failure.
* Raw binary COPY of the run's own rows into a temporary table (``copy_records_to_table``):
  PostgreSQL's intake without staging, conflict checks or candles.
* A bare ``websockets`` server broadcasting the run's own ``data`` messages to the same number
  of clients with the same channels, received by the same client processes: fan-out without
  the hub, Redis or FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
from websockets.asyncio.server import ServerConnection, serve

from marketpulse.loadtest.clients import END
from marketpulse.loadtest.processes import Child, ChildError, spawn
from marketpulse.loadtest.scenario import split_evenly
from marketpulse.store.database import asyncpg_dsn
from marketpulse.store.ticks import COLUMNS

XADD_REQUESTS = 100_000


def xadd_ceiling(redis_url: str, key: str, payload: str) -> float | None:
    """XADDs/s of ``payload`` into ``key`` by redis-benchmark (deleted afterwards)."""
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        return None
    parsed = urlparse(redis_url)
    base = [binary, "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    if parsed.password:
        base += ["-a", parsed.password]
    db = parsed.path.lstrip("/")
    if db.isdigit():
        base += ["--dbnum", db]
    try:
        out = subprocess.run(
            [*base, "-n", str(XADD_REQUESTS), "-P", "64", "-q", "XADD", key, "MAXLEN", "~",
             "100000", "*", "t", payload],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return None
    finally:
        subprocess.run([*base, "-n", "1", "-q", "DEL", key], capture_output=True, timeout=30,
                       check=False)  # fmt: skip
    rates = re.findall(r"([\d.]+) requests per second", out.replace(",", ""))
    return float(rates[-1]) if rates else None


async def copy_ceiling(database_url: str, limit: int = 50_000, runs: int = 3) -> float | None:
    """Rows/s of one binary COPY of (up to ``limit`` of) the run's stored rows into a temp
    table, best of ``runs``; ``None`` if nothing was stored."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM ticks LIMIT {int(limit)}")
        if not rows:
            return None
        records = [tuple(r) for r in rows]
        await conn.execute("CREATE TEMP TABLE e2e_copy_ceiling (LIKE ticks)")
        best = 0.0
        for _ in range(runs):
            await conn.execute("TRUNCATE e2e_copy_ceiling")
            started = time.perf_counter()
            await conn.copy_records_to_table("e2e_copy_ceiling", records=records,
                                             columns=COLUMNS)  # fmt: skip
            best = max(best, len(records) / (time.perf_counter() - started))
        return best
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class BroadcastCeiling:
    """Messages/s a bare ``websockets`` server delivered to the clients, and per source tick."""

    messages: int
    seconds: float
    source_ticks: int

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def ticks_per_s(self) -> float:
        return self.source_ticks / self.seconds if self.seconds > 0 else 0.0


class _BareServer:
    """Answers subscriptions like ``/ws`` does, then sends each client its share of
    ``messages`` (channel, text) as fast as the socket takes it, then ``END``."""

    def __init__(self, messages: list[tuple[str, str]]) -> None:
        self.messages = messages
        self.go = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        channels: set[str] = set()
        with contextlib.suppress(Exception):
            while not self.go.is_set():
                try:
                    async with asyncio.timeout(0.05):
                        raw = await ws.recv()
                except TimeoutError:
                    continue
                request = json.loads(raw)
                channel = request.get("channel")
                if request.get("message_type") == "subscribe" and channel:
                    channels.add(channel)
                    await ws.send(json.dumps({"message_type": "info",
                                              "message": f"subscribed to {channel}"}))  # fmt: skip
            mine = [text for channel, text in self.messages if channel in channels]
            for text in mine:
                await ws.send(text)
            await ws.send(END)
            await ws.wait_closed()


async def broadcast_ceiling(
    messages: list[tuple[str, str]],
    channels: list[list[str]],
    workers_count: int,
    run_dir: Path,
    *,
    deflate: bool,
) -> BroadcastCeiling | None:
    """Run the bare server here and the client processes against it."""
    if not messages or not channels:
        return None
    server = _BareServer(messages)
    async with serve(server.handler, "127.0.0.1", 0, max_size=None, ping_interval=None,
                     compression="deflate" if deflate else None) as bare:  # fmt: skip
        port = next(iter(bare.sockets)).getsockname()[1]
        workers: list[Child] = []
        outs = []
        try:
            for index, share in enumerate(split_evenly(channels, workers_count)):
                spec = run_dir / f"bare-channels-{index}.json"
                spec.write_text(json.dumps(share))
                out = run_dir / f"bare-clients-{index}.json"
                outs.append(out)
                args = ["marketpulse.loadtest.clients", "--url", f"ws://127.0.0.1:{port}",
                        "--channels", str(spec), "--out", str(out), "--until-end",
                        *([] if deflate else ["--no-deflate"])]  # fmt: skip
                workers.append(await spawn(f"bare-clients-{index}", args,
                                           is_ready=lambda line: line == "READY"))  # fmt: skip
            for child in workers:
                await child.wait_ready(120)
            started = time.time_ns()
            server.go.set()
            await asyncio.wait_for(asyncio.gather(*(c.proc.wait() for c in workers)), 600)
        except (ChildError, TimeoutError):
            return None
        finally:
            for child in workers:
                await child.stop(grace=5)
    total, last = 0, started
    for out in outs:
        result: dict[str, Any] = json.loads(out.read_text())
        for tally in result["clients"]:
            total += tally["received"]
            last = max(last, tally["end_ns"], tally["last_ns"])
    return BroadcastCeiling(total, (last - started) / 1e9, len(messages))

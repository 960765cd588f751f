"""Ticks/s the ingest publisher writes to Redis, against redis-benchmark's XADD ceiling.

One chunked round trip per 2000 ticks carries, per tick, the firehose XADD and (optionally) the
per-symbol stream XADD, and per instrument the snapshot SET and its history LPUSH. The ceiling
is ``redis-benchmark`` pipelining XADDs of the same tick JSON into one stream against the same
server in the same run: one command per tick, no client work at all. Uses ``REDIS_URL`` when
set, otherwise starts an embedded Valkey.

Wall-clock time (this is I/O): best of 3 runs of 50,000 full-mode ticks over 1,057 instruments.

The last case is the ingest role's whole per-tick path without the socket: the same ticks as
Kite full-mode frames of 250 packets (about 50 ms of a 5k ticks/s feed each), each decoded by
``feeds.kite.wire.decode_frame``, named from the instrument table as the ingest sink does, and
handed to the publisher frame by frame with every default write (firehose, snapshot, history,
per-symbol stream) — "ticks/s into Redis for the ingest role alone".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import msgspec
import redis.asyncio as aioredis

from bench import Result
from marketpulse.bus.publisher import TickPublisher
from marketpulse.config import Settings
from marketpulse.feeds.kite.wire import decode_frame, encode_frame
from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import Mode, Tick, encode_tick

TICKS = 50_000
RUNS = 3


def _ticks() -> list[Tick]:
    universe = default_universe(date(2026, 1, 5), extra_instruments=1000)
    market = SimulatedMarket(universe, 7)
    market.subscribe(universe.tokens, Mode.FULL)
    return market.generate(TICKS, time.time_ns())


Feed = Callable[[TickPublisher], Awaitable[int]]
"""One timed run: hand the publisher its ticks, return how many."""


async def _best_rate(url: str, tag: str, feed: Feed, **overrides: Any) -> float:
    """Ticks/s of the best of ``RUNS`` runs of ``feed`` into a publisher on private keys
    (``overrides`` are Settings fields), which are deleted afterwards."""
    settings = Settings(redis_url=url, redis_key_prefix=tag, cache_key_prefix=f"{tag}m",
                        symbol_stream_prefix=f"{tag}s", **overrides)  # fmt: skip
    redis = aioredis.Redis.from_url(url)
    best = 0.0
    try:
        for _ in range(RUNS):
            publisher = TickPublisher(settings)
            task = asyncio.create_task(publisher.run())
            started = time.perf_counter()
            count = await feed(publisher)
            publisher.stop()
            await task
            assert publisher.published == count, (publisher.published, count)
            best = max(best, count / (time.perf_counter() - started))
    finally:
        for pattern in (f"{{{tag}}}:*", f"{tag}m:*", f"{tag}s:*"):
            keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
            for i in range(0, len(keys), 500):
                await redis.delete(*keys[i : i + 500])
        await redis.aclose()
    return best


async def _publish_rate(url: str, ticks: list[Tick], streams: bool, history: bool) -> float:
    async def feed(publisher: TickPublisher) -> int:
        await publisher.publish(ticks)
        return len(ticks)

    return await _best_rate(
        url, f"bench{os.getpid()}", feed, symbol_stream_maxlen=10_000 if streams else 0,
        cache_snapshot_count=25 if history else 0,
    )  # fmt: skip


FRAME_PACKETS = 250


def _kite_frames(ticks: list[Tick]) -> tuple[list[bytes], dict[str, str]]:
    """The ticks as Kite frames (one NSE-equity token per instrument) and token → symbol."""
    tokens: dict[str, str] = {}
    retokened = []
    for tick in ticks:
        token = tokens.setdefault(tick.key, str(((len(tokens) + 1) << 8) | 1))
        retokened.append(msgspec.structs.replace(tick, token=token, exchange="NSE", symbol=None))
    frames = [encode_frame(retokened[i : i + FRAME_PACKETS])
              for i in range(0, len(retokened), FRAME_PACKETS)]  # fmt: skip
    return frames, {token: key for key, token in tokens.items()}


async def _ingest_rate(url: str, frames: list[bytes], symbols: dict[str, str]) -> float:
    """The ingest role's path with the default writes: decode, name, publish, frame by frame."""

    async def feed(publisher: TickPublisher) -> int:
        count = 0
        for frame in frames:
            batch = decode_frame(frame, time.time_ns()).ticks
            for tick in batch:
                tick.symbol = symbols.get(tick.token)
            count += len(batch)
            await publisher.publish(batch)
            await asyncio.sleep(0)  # a socket reader yields between frames too
        return count

    return await _best_rate(url, f"bench{os.getpid()}i", feed)


def _xadd_ceiling(url: str, payload: bytes) -> float | None:
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        print("redis-benchmark not found: no ceiling ratio (apt-get install redis-tools)",
              file=sys.stderr)  # fmt: skip
        return None
    parsed = urlparse(url)
    out = subprocess.run(
        [binary, "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379),
         "-n", "200000", "-P", "64", "-q", "XADD", "benchceiling", "MAXLEN", "~", "100000",
         "*", "t", payload.decode()],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    subprocess.run([binary, "-h", parsed.hostname or "127.0.0.1", "-p",
                    str(parsed.port or 6379), "-n", "1", "-q", "DEL", "benchceiling"],
                   capture_output=True, timeout=30, check=False)  # fmt: skip
    rates = re.findall(r"([\d.]+) requests per second", out.replace(",", ""))
    return float(rates[-1]) if rates else None


@contextlib.contextmanager
def _redis_url() -> object:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from marketpulse.embedded import EmbeddedServices

    home = Path(tempfile.mkdtemp(prefix="mp-bench-"))
    try:
        with EmbeddedServices(home, want_redis=True, want_postgres=False) as services:
            yield services.redis_url
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run() -> list[Result]:
    ticks = _ticks()
    with _redis_url() as url:
        assert isinstance(url, str)
        ceiling = _xadd_ceiling(url, encode_tick(ticks[0]))
        rows: list[Result] = []
        reference: Result | None = None
        if ceiling:
            reference = Result(name="redis-benchmark XADD, tick-sized entry, -P 64 (ceiling)",
                               ns_per_op=1e9 / ceiling, ops_per_s=ceiling)  # fmt: skip
            rows.append(reference)
        for label, streams, history in [
            ("publish: firehose + snapshot", False, False),
            ("publish: firehose + snapshot + history", False, True),
            ("publish: firehose + snapshot + history + symbol stream", True, True),
        ]:
            rate = asyncio.run(_publish_rate(url, ticks, streams, history))
            row = Result(name=label, ns_per_op=1e9 / rate, ops_per_s=rate)
            if reference is not None:
                row["reference"] = reference["name"]
                row["ratio"] = reference["ns_per_op"] / row["ns_per_op"]
            rows.append(row)
        frames, symbols = _kite_frames(ticks)
        rate = asyncio.run(_ingest_rate(url, frames, symbols))
        row = Result(name="ingest: Kite frames -> decode -> publish (default writes)",
                     ns_per_op=1e9 / rate, ops_per_s=rate)  # fmt: skip
        if reference is not None:
            row["reference"] = reference["name"]
            row["ratio"] = reference["ns_per_op"] / row["ns_per_op"]
        rows.append(row)
    return rows


if __name__ == "__main__":
    for row in run():
        ratio = f"  {row['ratio']:.2f}x of ceiling" if "ratio" in row else ""
        print(f"{row['name']:<60} {row['ops_per_s']:>12,.0f}/s{ratio}")

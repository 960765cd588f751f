"""Ticks/s the store writes to PostgreSQL, against a raw COPY of the same rows in the same run.

Up to four ways of writing identical rows (200,000 full-mode simulator ticks over 1,057
instruments, in batches of each of ``BATCHES``), each into a fresh migrated database:

* reference: ``COPY`` of the rows straight into the ``ticks`` table (no idempotence, no candles);
* the store without candles: exactly-once writes (COPY under a savepoint, staging table plus
  ``INSERT … ON CONFLICT DO NOTHING`` only after a redelivery);
* the store with candles on: the same, plus the 1m candle merge in the same transaction and
  the roll-up into 5m/15m/1h/1d every ``CANDLE_ROLLUP_SECONDS`` (1 s) of the run and once at
  its end, inside the timed region (what ``marketpulse store`` does by default);
* with ``REDIS_URL`` set, also the live candle updates of each batch published to Redis after
  the commit, as the store role does (its whole flush path).

Wall-clock time (this is I/O), best of 3. Uses ``DATABASE_URL`` when set, otherwise starts an
embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path

import asyncpg
import redis

from bench import Result
from marketpulse.bus.candles import CandlePublisher
from marketpulse.config import Settings
from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import Mode
from marketpulse.store.candles import rollup_candles
from marketpulse.store.database import asyncpg_dsn, upgrade
from marketpulse.store.partitions import PartitionManager
from marketpulse.store.ticks import (
    COLUMNS,
    Row,
    copy_ticks,
    copy_ticks_with_candles,
    prepare_connection,
    row_days,
    tick_row,
)

TICKS = int(os.environ.get("BENCH_STORE_TICKS", "200000"))
BATCHES = (5_000, 10_000, 20_000)  # TICK_BUFFER_SIZE (default 10,000): 0.25–1 s of ticks at 20k/s
RUNS = 3


def _rows() -> list[Row]:
    universe = default_universe(date(2026, 1, 5), extra_instruments=1000)
    market = SimulatedMarket(universe, 7)
    market.subscribe(universe.tokens, Mode.FULL)
    ticks = market.generate(TICKS, time.time_ns())
    return [tick_row(t, "mp:ticks:0", f"{i}-0") for i, t in enumerate(ticks)]


Writer = Callable[[asyncpg.Connection, list[Row]], Awaitable[object]]
Finish = Callable[[asyncpg.Connection], Awaitable[object]]


class _RollingUp:
    """A candles-on writer plus the store worker's periodic roll-up: every ``period`` seconds
    of the run, and a last one in :meth:`finish`, so the timed work is the whole candle work."""

    def __init__(self, write: Writer, rollup: Finish = rollup_candles, period: float = 1.0) -> None:
        self._write = write
        self._rollup = rollup
        self._period = period
        self._last = time.perf_counter()

    async def write(self, conn: asyncpg.Connection, rows: list[Row]) -> None:
        await self._write(conn, rows)
        if time.perf_counter() - self._last >= self._period:
            await self.finish(conn)

    async def finish(self, conn: asyncpg.Connection) -> None:
        self._last = time.perf_counter()
        await self._rollup(conn)


async def _raw_copy(conn: asyncpg.Connection, rows: list[Row]) -> None:
    await conn.copy_records_to_table("ticks", records=rows, columns=COLUMNS)


async def _rate(
    admin_url: str, rows: list[Row], batch: int, make: Callable[[], tuple[Writer, Finish | None]]
) -> float:
    best = 0.0
    for _ in range(RUNS):
        name = f"mp_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(asyncpg_dsn(admin_url))
        await admin.execute(f'CREATE DATABASE "{name}"')
        head, _, _ = asyncpg_dsn(admin_url).rpartition("/")
        url = f"{head}/{name}"
        try:
            await upgrade(url)
            conn = await asyncpg.connect(url)
            await prepare_connection(conn)
            await PartitionManager(2, 0).ensure(conn, row_days(rows))
            write, finish = make()
            started = time.perf_counter()
            for i in range(0, len(rows), batch):
                await write(conn, rows[i : i + batch])
            if finish is not None:
                await finish(conn)
            best = max(best, len(rows) / (time.perf_counter() - started))
            await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return best


def _candles_on() -> tuple[Writer, Finish]:
    rolling = _RollingUp(copy_ticks_with_candles)
    return rolling.write, rolling.finish


def _candles_published(settings: Settings) -> tuple[Writer, Finish]:
    """The store role's flush path: ticks and 1m candles in one transaction, then their live
    updates; and the periodic roll-up with its live updates."""
    publisher = CandlePublisher(settings)

    async def write(conn: asyncpg.Connection, rows: list[Row]) -> None:
        _, candles = await copy_ticks_with_candles(conn, rows)
        await publisher.publish(candles)

    async def rollup(conn: asyncpg.Connection) -> None:
        await publisher.publish(await rollup_candles(conn))

    rolling = _RollingUp(write, rollup)
    return rolling.write, rolling.finish


@contextlib.contextmanager
def _database_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from marketpulse.embedded import EmbeddedServices

    home = Path(tempfile.mkdtemp(prefix="mp-bench-"))
    try:
        with EmbeddedServices(home, want_redis=False, want_postgres=True) as services:
            assert services.database_url is not None
            yield services.database_url
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run() -> list[Result]:
    rows = _rows()
    out: list[Result] = []
    redis_url = os.environ.get("REDIS_URL")
    settings = Settings(redis_url=redis_url, redis_key_prefix=f"mp-bench-{uuid.uuid4().hex[:8]}")
    with _database_url() as url:
        for batch in BATCHES:
            raw = asyncio.run(_rate(url, rows, batch, lambda: (_raw_copy, None)))
            reference = Result(name=f"raw COPY into ticks, batches of {batch:,}",
                               ns_per_op=1e9 / raw, ops_per_s=raw)  # fmt: skip
            out.append(reference)
            cases: list[tuple[str, Callable[[], tuple[Writer, Finish | None]]]] = [
                ("store, candles off", lambda: (copy_ticks, None)),
                ("store, candles on (default)", _candles_on),
            ]
            if redis_url:
                cases.append(("store, candles on + live updates to Redis",
                              lambda: _candles_published(settings)))  # fmt: skip
            for label, make in cases:
                rate = asyncio.run(_rate(url, rows, batch, make))
                out.append(Result(name=f"{label}, batches of {batch:,}", ns_per_op=1e9 / rate,
                                  ops_per_s=rate, reference=reference["name"],
                                  ratio=rate / raw))  # fmt: skip
    if redis_url:
        redis.Redis.from_url(redis_url).delete(settings.candle_stream_key)
    return out


if __name__ == "__main__":
    for row in run():
        ratio = f"  {row['ratio']:.2f}x of raw COPY" if "ratio" in row else ""
        print(f"{row['name']:<55} {row['ops_per_s']:>12,.0f}/s{ratio}")

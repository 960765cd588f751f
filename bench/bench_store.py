"""Ticks/s the store writes to PostgreSQL, against a raw COPY of the same rows in the same run.

Three ways of writing identical rows (50,000 full-mode simulator ticks over 1,057 instruments,
in batches of ``BATCH``), each into a fresh migrated database:

* reference: ``COPY`` of the rows straight into the ``ticks`` table (no idempotence, no candles);
* the store without candles: COPY into the staging table, then ``INSERT … ON CONFLICT DO NOTHING``
  (exactly-once under redelivery);
* the store with candles on: the same, plus the 1m/5m/15m/1h/1d candle merge and the volume
  update in the same transaction (what ``marketpulse store`` does by default).

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

from bench import Result
from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import Mode
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

TICKS = 50_000
BATCH = 20_000  # about one FLUSH_INTERVAL_SECONDS of ticks at 20k ticks/s
RUNS = 3


def _rows() -> list[Row]:
    universe = default_universe(date(2026, 1, 5), extra_instruments=1000)
    market = SimulatedMarket(universe, 7)
    market.subscribe(universe.tokens, Mode.FULL)
    ticks = market.generate(TICKS, time.time_ns())
    return [tick_row(t, "mp:ticks:0", f"{i}-0") for i, t in enumerate(ticks)]


Writer = Callable[[asyncpg.Connection, list[Row]], Awaitable[object]]


async def _raw_copy(conn: asyncpg.Connection, rows: list[Row]) -> None:
    await conn.copy_records_to_table("ticks", records=rows, columns=COLUMNS)


async def _rate(admin_url: str, rows: list[Row], write: Writer) -> float:
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
            started = time.perf_counter()
            for i in range(0, len(rows), BATCH):
                await write(conn, rows[i : i + BATCH])
            best = max(best, len(rows) / (time.perf_counter() - started))
            await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return best


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
    with _database_url() as url:
        raw = asyncio.run(_rate(url, rows, _raw_copy))
        reference = Result(name=f"raw COPY into ticks, batches of {BATCH}", ns_per_op=1e9 / raw,
                           ops_per_s=raw)  # fmt: skip
        out.append(reference)
        for label, write in [
            ("store: staging COPY + ON CONFLICT (candles off)", copy_ticks),
            ("store: + 1m/5m/15m/1h/1d candles (default)", copy_ticks_with_candles),
        ]:
            rate = asyncio.run(_rate(url, rows, write))
            out.append(Result(name=label, ns_per_op=1e9 / rate, ops_per_s=rate,
                              reference=reference["name"], ratio=rate / raw))  # fmt: skip
    return out


if __name__ == "__main__":
    for row in run():
        ratio = f"  {row['ratio']:.2f}x of raw COPY" if "ratio" in row else ""
        print(f"{row['name']:<55} {row['ops_per_s']:>12,.0f}/s{ratio}")

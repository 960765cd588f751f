"""Backfill: candles from a provider's REST history into ``candles``, as ``reconciled``.

A job names a provider, symbols, an interval and a range. Symbols resolve through the
instrument master; the provider's ``SPEC.history`` does the chunking, rate limiting and retries
and yields one page per upstream request. Every candle start is aligned to its exchange session
in SQL (``mp_bucket_start``; providers stamp day bars at midnight or at the open) and upserted on
(symbol, interval, start), so a backfill never duplicates a live candle: it replaces the values
of ended buckets with the provider's and marks them ``reconciled``; the bucket still forming is
left to the live ticks. A 1m backfill also rebuilds the 5m/15m/1h/1d candles it covers, day bars
also fill ``price_history_daily``. Jobs and their progress live in ``backfill_jobs`` so any API
replica can report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import asyncpg

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedError
from marketpulse.feeds.history import CANDLE_INTERVALS, HistoryRequest, parse_interval
from marketpulse.feeds.registry import UnknownFeedError, feed_spec, lookup_symbols
from marketpulse.model import Candle
from marketpulse.store.candles import STEPS_SQL
from marketpulse.store.database import Connection
from marketpulse.store.instruments import UnknownInstrumentError
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

Progress = Callable[["BackfillState"], None]
"""Called after every page (the CLI draws its progress bar from it)."""


class BackfillError(ValueError):
    """A backfill request that cannot run (unknown provider, symbol or interval, bad range)."""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    provider: str
    symbols: tuple[str, ...]
    interval: str
    start: datetime
    end: datetime

    def validate(self, settings: Settings) -> None:
        """Raise :class:`BackfillError` saying what is wrong, before anything runs."""
        try:
            spec = feed_spec(self.provider)
        except UnknownFeedError as exc:
            raise BackfillError(str(exc)) from None
        if spec.history is None:
            raise BackfillError(f"provider {self.provider!r} has no REST history to backfill from")
        try:
            parse_interval(self.interval)
        except ValueError as exc:
            raise BackfillError(str(exc)) from None
        if not self.symbols:
            raise BackfillError("no symbols given")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise BackfillError("start and end must be timezone-aware")
        if self.start >= self.end:
            raise BackfillError(f"start ({self.start}) must be before end ({self.end})")
        if (self.end - self.start).days > settings.backfill_max_days:
            raise BackfillError(
                f"the range spans more than BACKFILL_MAX_DAYS={settings.backfill_max_days} days"
            )


@dataclass(slots=True)
class BackfillState:
    """What a running job has done so far (mirrored into ``backfill_jobs``)."""

    id: uuid.UUID
    plan: BackfillPlan
    status: str = "queued"
    progress: float = 0.0
    requests: int = 0
    candles: int = 0
    errors: list[str] = field(default_factory=list)


_UPSERT: Final = f"""
WITH page AS (
    SELECT p.symbol, p.start AS stamped, p.open, p.high, p.low, p.close, p.volume, p.oi,
           p.adj_close, coalesce(e.timezone, 'UTC') AS tz,
           coalesce(e.session_open, time '00:00') AS open_at, steps.step
    FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[],
                $6::float8[], $7::int8[], $8::int8[], $9::float8[])
         AS p(symbol, start, open, high, low, close, volume, oi, adj_close)
    JOIN {STEPS_SQL} ON steps.name = $10
    LEFT JOIN exchanges e ON e.code = $11
),
aligned AS (
    SELECT page.*, mp_bucket_start(stamped, step, tz, open_at) AS start,
           (stamped AT TIME ZONE tz)::date AS trading_day
    FROM page
),
kept AS (
    SELECT * FROM aligned
    WHERE start >= $12 AND start < $13 AND start + step <= now()
),
merged AS (
    INSERT INTO candles AS c (symbol, interval, start, trading_day, exchange, open, high, low,
                              close, volume, oi, status, session_first)
    SELECT symbol, $10, start, trading_day, $11, open, high, low, close, volume, oi,
           'reconciled', start <= (trading_day + open_at) AT TIME ZONE tz
    FROM kept
    ON CONFLICT (symbol, interval, start) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, oi = coalesce(EXCLUDED.oi, c.oi), status = 'reconciled',
        updated_at = now()
    RETURNING 1
),
daily AS (
    INSERT INTO price_history_daily AS d (symbol, date, open, high, low, close, adj_close,
                                          volume, previous_close, source)
    SELECT symbol, trading_day, open, high, low, close, adj_close, volume,
           lag(close) OVER (PARTITION BY symbol ORDER BY trading_day), $14
    FROM kept WHERE $10 = '1d'
    ON CONFLICT (symbol, date) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        adj_close = coalesce(EXCLUDED.adj_close, d.adj_close), volume = EXCLUDED.volume,
        previous_close = coalesce(EXCLUDED.previous_close, d.previous_close),
        source = EXCLUDED.source, updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM merged) AS candles, (SELECT count(*) FROM daily) AS days
"""

_ROLLUP: Final = f"""
WITH minutes AS (
    SELECT c.*, coalesce(e.timezone, 'UTC') AS tz, coalesce(e.session_open, time '00:00')
           AS open_at
    FROM candles c LEFT JOIN exchanges e ON e.code = c.exchange
    WHERE c.symbol = $1 AND c.interval = '1m'
      AND c.start >= $2::timestamptz - interval '1 day'
      AND c.start < $3::timestamptz + interval '1 day'
),
buckets AS (
    SELECT m.*, steps.name AS target, steps.step,
           mp_bucket_start(m.start, steps.step, m.tz, m.open_at) AS bucket
    FROM minutes m JOIN {STEPS_SQL} ON steps.name <> '1m'
),
affected AS (
    SELECT * FROM buckets
    WHERE bucket < $3 AND bucket + step > $2 AND bucket + step <= now()
),
rolled AS (
    SELECT symbol, target, bucket, min(trading_day) AS trading_day, min(exchange) AS exchange,
           (array_agg(open ORDER BY start))[1] AS open, max(high) AS high, min(low) AS low,
           (array_agg(close ORDER BY start DESC))[1] AS close, sum(volume) AS volume,
           (array_agg(oi ORDER BY start DESC) FILTER (WHERE oi IS NOT NULL))[1] AS oi,
           sum(ticks) AS ticks, bool_or(session_first) AS session_first
    FROM affected GROUP BY symbol, target, bucket
)
INSERT INTO candles AS c (symbol, interval, start, trading_day, exchange, open, high, low, close,
                          volume, oi, ticks, status, session_first)
SELECT symbol, target, bucket, trading_day, exchange, open, high, low, close, volume, oi, ticks,
       'reconciled', session_first
FROM rolled
ON CONFLICT (symbol, interval, start) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, oi = coalesce(EXCLUDED.oi, c.oi), status = 'reconciled',
    updated_at = now()
"""


async def store_history(
    conn: Connection,
    target: TrackedSymbol,
    interval: str,
    start: datetime,
    end: datetime,
    candles: Sequence[Candle],
    source: str,
) -> int:
    """Upsert one page of provider candles as ``reconciled``; returns how many were kept."""
    if not candles:
        return 0
    row = await conn.fetchrow(
        _UPSERT,
        [target.symbol] * len(candles), [c.start for c in candles], [c.open for c in candles],
        [c.high for c in candles], [c.low for c in candles], [c.close for c in candles],
        [c.volume for c in candles], [c.oi for c in candles], [c.adj_close for c in candles],
        interval, target.exchange, start, end, source,
    )  # fmt: skip
    assert row is not None
    return int(row["candles"])


async def roll_up(conn: Connection, symbol: str, start: datetime, end: datetime) -> None:
    """Rebuild the 5m/15m/1h/1d candles overlapping ``[start, end)`` from the 1m candles."""
    await conn.execute(_ROLLUP, symbol, start, end)


async def resolve_targets(
    pool: asyncpg.Pool, settings: Settings, provider: str, symbols: Sequence[str]
) -> list[TrackedSymbol]:
    """The plan's symbols as the provider knows them (``UnknownInstrumentError`` names any it
    does not know)."""
    found, unknown = await lookup_symbols(provider, settings, pool, symbols)
    if unknown:
        raise UnknownInstrumentError(
            f"{provider}: unknown instruments {', '.join(unknown)}; run `marketpulse "
            f"instruments sync --provider {provider}` or check the spelling"
        )
    return found


async def run_backfill(
    pool: asyncpg.Pool,
    settings: Settings,
    state: BackfillState,
    progress: Progress | None = None,
    targets: list[TrackedSymbol] | None = None,
) -> BackfillState:
    """Run one job to the end. A symbol the provider fails on is recorded in ``errors`` and
    the others go on; the job fails only when nothing could be fetched."""
    plan = state.plan
    spec = feed_spec(plan.provider)
    assert spec.history is not None
    state.status = "running"
    await _save(pool, state, started=True)
    if targets is None:
        targets = await resolve_targets(pool, settings, plan.provider, plan.symbols)
    span = (plan.end - plan.start).total_seconds()
    step = CANDLE_INTERVALS[plan.interval]
    failed = 0
    for index, target in enumerate(targets):
        request = HistoryRequest(target, plan.interval, plan.start, plan.end)
        try:
            async for page in spec.history(settings, request):
                async with pool.acquire() as conn:
                    state.candles += await store_history(
                        conn, target, plan.interval, plan.start, plan.end, page, plan.provider
                    )
                state.requests += 1
                reached = max((c.start for c in page), default=plan.start) + step
                covered = min(1.0, max(0.0, (reached - plan.start).total_seconds() / span))
                state.progress = (index + covered) / len(targets)
                await _save(pool, state)
                if progress is not None:
                    progress(state)
            if plan.interval == "1m":
                async with pool.acquire() as conn:
                    await roll_up(conn, target.symbol, plan.start, plan.end)
        except (FeedError, OSError, ValueError) as exc:
            failed += 1
            state.errors.append(f"{target.symbol}: {exc}")
            log.warning("backfill %s: %s failed: %s", state.id, target.symbol, exc)
        state.progress = (index + 1) / len(targets)
        await _save(pool, state)
        if progress is not None:
            progress(state)
    state.status = "failed" if failed == len(targets) else "done"
    await _save(pool, state, finished=True)
    return state


async def create_job(pool: asyncpg.Pool, plan: BackfillPlan) -> BackfillState:
    state = BackfillState(uuid.uuid4(), plan)
    await pool.execute(
        "INSERT INTO backfill_jobs (id, provider, symbols, interval, range_start, range_end) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        state.id, plan.provider, list(plan.symbols), plan.interval, plan.start, plan.end,
    )  # fmt: skip
    return state


async def fail_job(pool: asyncpg.Pool, state: BackfillState, reason: str) -> None:
    state.status = "failed"
    state.errors.append(reason)
    await _save(pool, state, finished=True)


async def read_job(pool: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM backfill_jobs WHERE id = $1", job_id)
    return None if row is None else dict(row)


async def abandon_running_jobs(pool: asyncpg.Pool) -> int:
    """Jobs left ``running`` by a process that stopped are failed, not left spinning."""
    status = await pool.execute(
        "UPDATE backfill_jobs SET status = 'failed', finished_at = now(), "
        "errors = errors || ARRAY['interrupted: the process running it stopped'] "
        "WHERE status IN ('queued', 'running')"
    )
    return int(status.rsplit(" ", 1)[1])


async def _save(
    pool: asyncpg.Pool, state: BackfillState, *, started: bool = False, finished: bool = False
) -> None:
    await pool.execute(
        "UPDATE backfill_jobs SET status = $2, progress = $3, requests = $4, candles = $5, "
        "errors = $6, started_at = CASE WHEN $7 THEN now() ELSE started_at END, "
        "finished_at = CASE WHEN $8 THEN now() ELSE finished_at END WHERE id = $1",
        state.id, state.status, state.progress, state.requests, state.candles, state.errors,
        started, finished,
    )  # fmt: skip


class BackfillJobs:
    """Backfill jobs running in this process (the API's), as background tasks."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def start(self, plan: BackfillPlan) -> BackfillState:
        """Validate, resolve the symbols, record the job and start it; errors in the request
        (:class:`BackfillError`, ``UnknownInstrumentError``) are raised before anything runs."""
        plan.validate(self._settings)
        targets = await resolve_targets(self._pool, self._settings, plan.provider, plan.symbols)
        state = await create_job(self._pool, plan)
        task = asyncio.create_task(self._run(state, targets), name=f"backfill:{state.id}")
        self._tasks[state.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(state.id, None))
        return state

    async def _run(self, state: BackfillState, targets: list[TrackedSymbol]) -> None:
        try:
            await run_backfill(self._pool, self._settings, state, targets=targets)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(fail_job(self._pool, state, "interrupted: the API stopped"))
            raise
        except Exception as exc:
            log.exception("backfill %s failed", state.id)
            with contextlib.suppress(Exception):
                await fail_job(self._pool, state, f"internal error: {exc!r}")

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

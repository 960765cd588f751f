"""``POST /api/instruments/sync``: the instrument-master sync of ``marketpulse instruments sync``
run as a background job of the API process, with its progress in PostgreSQL.

A job goes ``pending → downloading → writing → succeeded | failed``. While it writes, the rows
done and total are flushed to ``instrument_sync_jobs`` every ``FLUSH_SECONDS``, so any API
replica can answer ``GET /api/instruments/sync/{id}``. One job per provider at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from marketpulse.config import Settings
from marketpulse.feeds.registry import UnknownFeedError, feed_spec
from marketpulse.reference.errors import ConflictError, InvalidError
from marketpulse.store.instruments import InstrumentRecord, Progress, SyncReport, sync_instruments

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
MAX_COLLISIONS_KEPT = 100

Fetch = Callable[[Settings, Progress | None], Awaitable[list[InstrumentRecord]]]


@dataclass
class _Progress:
    state: str = "pending"
    done: int = 0
    total: int | None = None


class SyncJobs:
    """Instrument-master sync jobs running in this process."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._running: dict[str, uuid.UUID] = {}  # provider → job

    async def start(self, provider: str) -> uuid.UUID:
        """Check the provider has an instrument master, record the job and start it."""
        try:
            fetch = feed_spec(provider).instruments
        except UnknownFeedError as exc:
            raise InvalidError(str(exc)) from exc
        if fetch is None:
            raise InvalidError(f"{provider!r} has no instrument master to sync")
        running = self._running.get(provider)
        if running is not None:
            raise ConflictError(f"a {provider} instrument sync is already running (job {running})")
        job_id = uuid.uuid4()
        await self._pool.execute(
            "INSERT INTO instrument_sync_jobs (id, provider, state) VALUES ($1, $2, 'pending')",
            job_id, provider,
        )  # fmt: skip
        self._running[provider] = job_id
        task = asyncio.create_task(self._run(job_id, provider, fetch), name=f"sync:{job_id}")
        self._tasks[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job_id, None)
            self._running.pop(provider, None)

        task.add_done_callback(done)
        return job_id

    async def _run(self, job_id: uuid.UUID, provider: str, fetch: Fetch) -> None:
        progress = _Progress()
        work = asyncio.create_task(self._work(job_id, provider, fetch, progress))
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=FLUSH_SECONDS)
                if not work.done():
                    await self._flush(job_id, progress)
            report = work.result()
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fail(job_id, "interrupted: the API stopped"))
            raise
        except Exception as exc:
            log.exception("instrument sync %s (%s) failed", job_id, provider)
            with contextlib.suppress(Exception):
                await self._fail(job_id, f"{type(exc).__name__}: {exc}")
            return
        await self._pool.execute(
            """
            UPDATE instrument_sync_jobs SET state = 'succeeded', rows_done = $2, rows_total = $3,
                added = $4, changed = $5, unchanged = $6, removed = $7, collisions = $8,
                updated_at = now(), finished_at = now()
            WHERE id = $1
            """,
            job_id, progress.done, progress.total or 0, report.added, report.changed,
            report.unchanged, report.removed, report.collisions[:MAX_COLLISIONS_KEPT],
        )  # fmt: skip

    async def _work(
        self, job_id: uuid.UUID, provider: str, fetch: Fetch, progress: _Progress
    ) -> SyncReport:
        progress.state = "downloading"
        await self._flush(job_id, progress)
        records = await fetch(self._settings, None)
        progress.state, progress.done, progress.total = "writing", 0, len(records)
        await self._flush(job_id, progress)

        def wrote(done: int, total: int) -> None:
            progress.done, progress.total = done, total

        report = await sync_instruments(self._pool, provider, records, wrote)
        progress.done = progress.total = len(records)
        return report

    async def _flush(self, job_id: uuid.UUID, progress: _Progress) -> None:
        await self._pool.execute(
            "UPDATE instrument_sync_jobs SET state = $2, rows_done = $3, rows_total = $4, "
            "updated_at = now() WHERE id = $1 AND finished_at IS NULL",
            job_id, progress.state, progress.done, progress.total,
        )  # fmt: skip

    async def _fail(self, job_id: uuid.UUID, error: str) -> None:
        await self._pool.execute(
            "UPDATE instrument_sync_jobs SET state = 'failed', error = $2, updated_at = now(), "
            "finished_at = now() WHERE id = $1",
            job_id, error,
        )  # fmt: skip

    async def stop(self) -> None:
        """Cancel running jobs (each records itself as interrupted)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


async def read_job(pool: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any] | None:
    """A job as the API returns it, or ``None``."""
    row = await pool.fetchrow("SELECT * FROM instrument_sync_jobs WHERE id = $1", job_id)
    if row is None:
        return None
    result = None
    if row["state"] == "succeeded":
        result = {k: row[k] for k in ("added", "changed", "unchanged", "removed")}
        result["collisions"] = list(row["collisions"])
    return {
        "id": str(row["id"]),
        "provider": row["provider"],
        "state": row["state"],
        "rows_done": row["rows_done"],
        "rows_total": row["rows_total"],
        "result": result,
        "error": row["error"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "finished_at": row["finished_at"],
    }

"""Daily partitions of ``ticks``: created ahead of the data, once per day per process.

Only while ``ticks`` is natively partitioned (migration 0001): once migration 0006 made it a
TimescaleDB hypertable, chunks and retention are TimescaleDB's and this steps aside.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from marketpulse.store.database import Connection
from marketpulse.store.timescale import apply_tick_retention, hypertables

log = logging.getLogger(__name__)

_LOCK_ID = 0x6D70_7061  # "mppa": serialises partition DDL across store workers


def partition_name(day: date) -> str:
    return f"ticks_p{day:%Y%m%d}"


def partition_ddl(day: date) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF ticks "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def partition_day(name: str) -> date | None:
    """The day of a ``ticks_pYYYYMMDD`` partition name (``None`` for anything else)."""
    if not name.startswith("ticks_p") or len(name) != 15:
        return None
    try:
        return datetime.strptime(name[7:], "%Y%m%d").date()
    except ValueError:
        return None


class TicksLayout(enum.Enum):
    """How ``ticks`` is stored, which decides who creates and drops its pieces."""

    PARTITIONED = "partitioned"  # native day partitions: this module's job
    HYPERTABLE = "hypertable"  # TimescaleDB chunks and retention policy
    PLAIN = "plain"  # neither (e.g. half-way through a hand-made conversion): nothing to do


async def ticks_layout(conn: Connection) -> TicksLayout:
    """Read the layout from the catalogs (``pg_class.relkind`` ``p`` = natively partitioned;
    otherwise ``timescaledb_information.hypertables`` when the extension is installed)."""
    relkind = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass('ticks')"
    )
    if relkind == "p":
        return TicksLayout.PARTITIONED
    if "ticks" in await hypertables(conn):
        return TicksLayout.HYPERTABLE
    return TicksLayout.PLAIN


class PartitionManager:
    """Remembers which day partitions exist so the hot path asks PostgreSQL only on a new day,
    and drops the ones past the retention window."""

    def __init__(
        self,
        days_ahead: int,
        retention_days: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.days_ahead = days_ahead
        self.retention_days = retention_days
        self._clock = clock
        self._known: set[date] = set()
        self._layout: TicksLayout | None = None
        self._policy_applied = False

    async def layout(self, conn: Connection) -> TicksLayout:
        """The layout of ``ticks``, read once per process (and again after :meth:`forget`)."""
        if self._layout is None:
            self._layout = await ticks_layout(conn)
            if self._layout is not TicksLayout.PARTITIONED:
                log.info("ticks is %s: day partitions are not managed here", self._layout.value)
        return self._layout

    async def ensure(self, conn: Connection, days: Iterable[date]) -> None:
        """Create the partitions for ``days`` (and ``days_ahead`` after today) if missing."""
        today = self._clock().date()
        wanted = set(days) | {today + timedelta(days=i) for i in range(self.days_ahead + 1)}
        missing = sorted(wanted - self._known)
        if not missing or await self.layout(conn) is not TicksLayout.PARTITIONED:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            for day in missing:
                await conn.execute(partition_ddl(day))
        self._known.update(missing)

    async def drop_expired(self, conn: Connection) -> list[str]:
        """Drop day partitions older than ``retention_days`` (0 keeps everything); returns the
        names dropped. Today and the ``retention_days - 1`` days before it are kept. Nothing to
        do for a hypertable: its TimescaleDB retention policy drops old chunks; the first call
        sets that policy to ``retention_days`` (so a changed setting takes effect)."""
        layout = await self.layout(conn)
        if layout is TicksLayout.HYPERTABLE and not self._policy_applied:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
                await apply_tick_retention(conn, self.retention_days)
            self._policy_applied = True
            log.info("ticks retention policy set to %d days (0 = none)", self.retention_days)
        if self.retention_days <= 0 or layout is not TicksLayout.PARTITIONED:
            return []
        oldest_kept = self._clock().date() - timedelta(days=self.retention_days - 1)
        dropped: list[str] = []
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            rows = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ticks'"
            )
            for row in rows:
                day = partition_day(row["relname"])
                if day is not None and day < oldest_kept:
                    await conn.execute(f"DROP TABLE IF EXISTS {row['relname']}")
                    self._known.discard(day)
                    dropped.append(row["relname"])
        return sorted(dropped)

    def forget(self) -> None:
        """Drop the cache (after a database restart the partitions may have been dropped, or
        the table converted)."""
        self._known.clear()
        self._layout = None

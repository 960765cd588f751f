"""The TimescaleDB path: detecting the extension and the SQL that turns ``ticks`` and ``candles``
into compressed hypertables (and back).

The statements are built by pure functions so they can be checked without a TimescaleDB server
(none can be installed where this project is developed): every statement is marked with whether
it needs the extension, and the rest — the table swaps that keep names, columns, indexes and
rows — run on plain PostgreSQL in the tests. Migration 0006 executes the lists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

from marketpulse.store.database import Connection, DatabaseError

log = logging.getLogger(__name__)

Mode = Literal["auto", "on", "off"]
"""``TIMESCALEDB`` setting: use the extension when available / require it / never use it."""

MIN_VERSION: Final = (2, 11)
"""Oldest TimescaleDB used: 2.11 allows ``INSERT … ON CONFLICT`` and ``UPDATE`` on compressed
chunks, which late ticks, candle corrections and backfill rely on."""
_MIN_TEXT: Final = ".".join(map(str, MIN_VERSION))

TICKS_CHUNK_INTERVAL: Final = "1 day"
CANDLES_CHUNK_INTERVAL: Final = "7 days"
COMPRESS_AFTER: Final = "1 day"

AVAILABILITY_SQL: Final = (
    "SELECT default_version, installed_version FROM pg_available_extensions "
    "WHERE name = 'timescaledb'"
)
"""One row when the server has the extension's files (``installed_version`` set once
``CREATE EXTENSION`` ran in this database); no row on plain PostgreSQL."""

EXTENSION_INSTALLED_SQL: Final = (
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
)
"""Whether ``CREATE EXTENSION timescaledb`` ran in this database."""

HYPERTABLES_SQL: Final = (
    "SELECT hypertable_name FROM timescaledb_information.hypertables "
    "WHERE hypertable_schema = current_schema()"
)
"""Hypertables of the current schema; only valid once the extension is installed."""


class TimescaleUnavailableError(DatabaseError):
    """``TIMESCALEDB=on`` but the server cannot provide a usable TimescaleDB."""


@dataclass(frozen=True)
class Availability:
    """What the server offers: the extension version it could install, the one installed."""

    default_version: str | None = None
    installed_version: str | None = None

    @property
    def available(self) -> bool:
        return self.default_version is not None


@dataclass(frozen=True)
class Statement:
    """One SQL statement of the conversion; ``timescale`` marks those that need the extension
    (the others are plain PostgreSQL and run in the tests)."""

    sql: str
    timescale: bool = False


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.14.2"`` → ``(2, 14, 2)``; a suffix such as ``-dev`` is ignored."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def should_use(mode: Mode, availability: Availability) -> bool:
    """Whether migration 0006 converts the tables.

    ``off`` never does; ``auto`` does when a recent enough extension is available (and says why
    not otherwise); ``on`` does or raises :class:`TimescaleUnavailableError`, so a deployment
    that counts on compression and retention never silently runs without them.
    """
    if mode == "off":
        return False
    problem = None
    version = availability.installed_version or availability.default_version
    if version is None:
        problem = "the timescaledb extension is not available on this PostgreSQL server"
    elif parse_version(version) < MIN_VERSION:
        problem = f"timescaledb {version} is older than the {_MIN_TEXT} this service needs"
    if problem is None:
        return True
    if mode == "on":
        raise TimescaleUnavailableError(
            f"TIMESCALEDB=on but {problem}; install TimescaleDB {_MIN_TEXT}+ "
            "(with shared_preload_libraries = 'timescaledb') or set TIMESCALEDB=auto"
        )
    log.info("TimescaleDB not used: %s; ticks stay day-partitioned", problem)
    return False


def availability_from_row(row: tuple[str | None, str | None] | None) -> Availability:
    """The :data:`AVAILABILITY_SQL` result (a row or ``None``) as an :class:`Availability`."""
    if row is None:
        return Availability()
    return Availability(default_version=row[0], installed_version=row[1])


async def detect(conn: Connection) -> Availability:
    """Ask the server whether it has TimescaleDB (never fails on plain PostgreSQL)."""
    row = await conn.fetchrow(AVAILABILITY_SQL)
    return availability_from_row(None if row is None else (row[0], row[1]))


async def hypertables(conn: Connection) -> set[str]:
    """Names of the hypertables in the current schema (empty without the extension)."""
    if not await conn.fetchval(EXTENSION_INSTALLED_SQL):
        return set()
    return {row[0] for row in await conn.fetch(HYPERTABLES_SQL)}


def _interval(days: int) -> str:
    return f"INTERVAL '{days} days'"


def ticks_to_plain() -> list[Statement]:
    """Swap the day-partitioned ``ticks`` for a plain table with the same columns, defaults,
    constraints and index names, rows copied; the partitions are dropped with the old parent."""
    return [
        Statement("ALTER TABLE ticks RENAME TO ticks_native"),
        Statement("ALTER INDEX ticks_symbol_time_idx RENAME TO ticks_native_symbol_time_idx"),
        Statement(
            "ALTER TABLE ticks_native RENAME CONSTRAINT ticks_stream_stream_id_time_key "
            "TO ticks_native_stream_stream_id_time_key"
        ),
        Statement("CREATE TABLE ticks (LIKE ticks_native INCLUDING ALL)"),
    ]


def ticks_copy_from_native() -> list[Statement]:
    """Move the rows of the old partitioned table into the new ``ticks`` and drop the old."""
    return [
        Statement("INSERT INTO ticks SELECT * FROM ticks_native"),
        Statement("DROP TABLE ticks_native"),
    ]


def upgrade_statements(tick_retention_days: int) -> list[Statement]:
    """Everything migration 0006 runs when TimescaleDB is used.

    ``ticks`` is natively partitioned, and a hypertable cannot be made from a partitioned
    table, so it is rebuilt as a plain table, made a hypertable while empty, and refilled; its
    unique key (stream, stream_id, time) already includes the time column as hypertables
    require. ``candles`` is a plain table whose key includes ``start``, so its rows migrate in
    place. Both compress chunks older than :data:`COMPRESS_AFTER`; ticks older than
    ``tick_retention_days`` are dropped by a retention policy (0 = keep forever, no policy).
    """
    if tick_retention_days < 0:
        raise ValueError(f"tick_retention_days must be >= 0, got {tick_retention_days}")
    statements = [
        Statement("CREATE EXTENSION IF NOT EXISTS timescaledb", timescale=True),
        *ticks_to_plain(),
        Statement(
            "SELECT create_hypertable('ticks', 'time', "
            f"chunk_time_interval => INTERVAL '{TICKS_CHUNK_INTERVAL}', "
            "create_default_indexes => false)",
            timescale=True,
        ),
        *ticks_copy_from_native(),
        Statement(
            "SELECT create_hypertable('candles', 'start', "
            f"chunk_time_interval => INTERVAL '{CANDLES_CHUNK_INTERVAL}', "
            "create_default_indexes => false, migrate_data => true)",
            timescale=True,
        ),
        Statement(
            "ALTER TABLE ticks SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'symbol', "
            "timescaledb.compress_orderby = 'time DESC')",
            timescale=True,
        ),
        Statement(
            f"SELECT add_compression_policy('ticks', INTERVAL '{COMPRESS_AFTER}')",
            timescale=True,
        ),
        Statement(
            "ALTER TABLE candles SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'symbol, \"interval\"', "
            "timescaledb.compress_orderby = 'start DESC')",
            timescale=True,
        ),
        Statement(
            f"SELECT add_compression_policy('candles', INTERVAL '{COMPRESS_AFTER}')",
            timescale=True,
        ),
    ]
    return [*statements, *tick_retention_statements(tick_retention_days)]


def tick_retention_statements(days: int) -> list[Statement]:
    """Make the ``ticks`` retention policy drop chunks older than ``days`` (0 = no policy).

    Replacing the policy rather than adding it once keeps it in step with a changed
    ``TICK_RETENTION_DAYS``: the store role runs these at start (see
    :meth:`marketpulse.store.partitions.PartitionManager.drop_expired`).
    """
    if days < 0:
        raise ValueError(f"tick_retention_days must be >= 0, got {days}")
    statements = [
        Statement("SELECT remove_retention_policy('ticks', if_exists => true)", timescale=True)
    ]
    if days > 0:
        statements.append(
            Statement(f"SELECT add_retention_policy('ticks', {_interval(days)})", timescale=True)
        )
    return statements


async def apply_tick_retention(conn: Connection, days: int) -> None:
    """Run :func:`tick_retention_statements` in one transaction (``ticks`` is a hypertable)."""
    async with conn.transaction():
        for statement in tick_retention_statements(days):
            await conn.execute(statement.sql)


# Recreates the day partitions the rows need, named like store/partitions.py names them.
_NATIVE_PARTITIONS: Final = """
DO $$
DECLARE
    day date;
BEGIN
    FOR day IN SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM ticks LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF ticks_native FOR VALUES FROM (%L) TO (%L)',
            'ticks_p' || to_char(day, 'YYYYMMDD'),
            day::timestamp AT TIME ZONE 'UTC',
            (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END
$$
""".strip()


def downgrade_statements() -> list[Statement]:
    """Turn the hypertables back into what migrations 0001/0002 made: a day-partitioned
    ``ticks`` (a partition for every day that has rows) and a plain ``candles``, rows and names
    kept. Dropping a hypertable drops its chunks and policies; none of these statements needs
    the extension, which stays installed (``DROP EXTENSION timescaledb`` by hand if wanted)."""
    return [
        Statement("CREATE TABLE ticks_native (LIKE ticks INCLUDING ALL) PARTITION BY RANGE (time)"),
        Statement(_NATIVE_PARTITIONS),
        Statement("INSERT INTO ticks_native SELECT * FROM ticks"),
        Statement("DROP TABLE ticks"),
        Statement("ALTER TABLE ticks_native RENAME TO ticks"),
        Statement("ALTER INDEX ticks_native_symbol_time_idx RENAME TO ticks_symbol_time_idx"),
        Statement(
            "ALTER TABLE ticks RENAME CONSTRAINT ticks_native_stream_stream_id_time_key "
            "TO ticks_stream_stream_id_time_key"
        ),
        Statement("CREATE TABLE candles_plain (LIKE candles INCLUDING ALL)"),
        Statement("INSERT INTO candles_plain SELECT * FROM candles"),
        Statement("DROP TABLE candles"),
        Statement("ALTER TABLE candles_plain RENAME TO candles"),
        Statement("ALTER TABLE candles RENAME CONSTRAINT candles_plain_pkey TO candles_pkey"),
        Statement("ALTER INDEX candles_plain_start_idx RENAME TO candles_live_idx"),
    ]

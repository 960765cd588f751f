"""The TimescaleDB path on the plain PostgreSQL this machine has (TimescaleDB cannot be installed
here): detection says unavailable, migration 0006 is a no-op, ``TIMESCALEDB=on`` fails clearly,
and the plain-SQL part of the conversion (table swaps, copies, names) runs for real both ways
while partition maintenance steps aside from a ``ticks`` that is not natively partitioned."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner, Result

from marketpulse.cli import app
from marketpulse.store.database import (
    MIGRATIONS_DIR,
    asyncpg_dsn,
    current_revision_sync,
    downgrade_sync,
    upgrade_sync,
)
from marketpulse.store.partitions import (
    PartitionManager,
    TicksLayout,
    partition_day,
    partition_name,
    ticks_layout,
)
from marketpulse.store.timescale import (
    Statement,
    TimescaleUnavailableError,
    apply_tick_retention,
    detect,
    downgrade_statements,
    hypertables,
    should_use,
    upgrade_statements,
)

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
"""The newest revision: 0006 and any later one apply on top."""

DAYS = (date(2026, 3, 9), date(2026, 3, 10))

# A stand-in for the four TimescaleDB functions the conversion calls, with the parameter names
# and defaults of TimescaleDB 2.x (sql/ddl_api.sql, sql/policy_api.sql; ``"any"`` becomes
# ``anyelement``, which PL/pgSQL can take). It records each call and enforces the documented
# preconditions: create_hypertable wants a plain (not partitioned) table, empty unless
# migrate_data, whose unique indexes all include the time column; policies want a hypertable.
TIMESCALE_STAND_IN = """
CREATE TABLE ts_calls (n serial, fn text, target text, args jsonb);

CREATE FUNCTION create_hypertable(
    relation regclass, time_column_name name, partitioning_column name = NULL,
    number_partitions integer = NULL, associated_schema_name name = NULL,
    associated_table_prefix name = NULL, chunk_time_interval anyelement = NULL::bigint,
    create_default_indexes boolean = true, if_not_exists boolean = false,
    partitioning_func regproc = NULL, migrate_data boolean = false,
    chunk_target_size text = NULL, chunk_sizing_func regproc = NULL,
    time_partitioning_func regproc = NULL
) RETURNS TABLE (hypertable_id int, schema_name name, table_name name, created bool)
LANGUAGE plpgsql AS $$
DECLARE
    has_rows boolean;
    time_attnum int2;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = relation) <> 'r' THEN
        RAISE EXCEPTION 'table "%" has to be a plain table', relation;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', relation) INTO has_rows;
    IF has_rows AND NOT migrate_data THEN
        RAISE EXCEPTION 'table "%" is not empty', relation;
    END IF;
    SELECT attnum INTO time_attnum FROM pg_attribute
     WHERE attrelid = relation AND attname = time_column_name AND NOT attisdropped;
    IF time_attnum IS NULL THEN
        RAISE EXCEPTION 'column "%" does not exist', time_column_name;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = relation AND indisunique
                AND NOT time_attnum = ANY (indkey::int2[])) THEN
        RAISE EXCEPTION 'cannot create a unique index without the column "%"', time_column_name;
    END IF;
    INSERT INTO ts_calls (fn, target, args) VALUES ('create_hypertable', relation::text,
        jsonb_build_object('time_column', time_column_name, 'chunk', chunk_time_interval::text,
                           'migrate_data', migrate_data,
                           'default_indexes', create_default_indexes));
    RETURN QUERY SELECT 1, 'public'::name, relation::text::name, true;
END
$$;

CREATE FUNCTION ts_require_hypertable(relation regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ts_calls WHERE fn = 'create_hypertable'
                    AND target = relation::text) THEN
        RAISE EXCEPTION 'table "%" is not a hypertable', relation;
    END IF;
END
$$;

CREATE FUNCTION add_compression_policy(
    hypertable regclass, compress_after anyelement, if_not_exists boolean = false
) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ts_require_hypertable(hypertable);
    INSERT INTO ts_calls (fn, target, args) VALUES ('add_compression_policy', hypertable::text,
        jsonb_build_object('after', compress_after::text));
    RETURN 1000;
END
$$;

CREATE FUNCTION add_retention_policy(
    relation regclass, drop_after anyelement, if_not_exists boolean = false
) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ts_require_hypertable(relation);
    INSERT INTO ts_calls (fn, target, args) VALUES ('add_retention_policy', relation::text,
        jsonb_build_object('after', drop_after::text));
    RETURN 1001;
END
$$;

CREATE FUNCTION remove_retention_policy(relation regclass, if_exists boolean = false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ts_require_hypertable(relation);
    INSERT INTO ts_calls (fn, target, args) VALUES ('remove_retention_policy', relation::text,
        jsonb_build_object('if_exists', if_exists));
END
$$;
"""


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    yield connection
    await connection.close()


async def schema(conn: asyncpg.Connection) -> dict[str, object]:
    """What a conversion must keep: per table its kind, columns, constraints and indexes."""
    result: dict[str, object] = {}
    for table in ("ticks", "candles"):
        result[table] = {
            "relkind": await conn.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", table
            ),
            "columns": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = $1 ORDER BY ordinal_position",
                    table,
                )
            ],
            "constraints": sorted(
                tuple(r)
                for r in await conn.fetch(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = to_regclass($1)",
                    table,
                )
            ),
            "indexes": sorted(
                tuple(r)
                for r in await conn.fetch(
                    "SELECT indexrelid::regclass::text, "
                    "pg_get_indexdef(indexrelid) LIKE '%' || 'UNIQUE' || '%', "
                    "pg_get_expr(indpred, indrelid), indkey::text "
                    "FROM pg_index WHERE indrelid = to_regclass($1)",
                    table,
                )
            ),
        }
    return result


async def tick_partitions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ticks'"
    )
    return {r["relname"] for r in rows}


async def insert_tick(conn: asyncpg.Connection, at: datetime, stream_id: str) -> str:
    return str(
        await conn.execute(
            "INSERT INTO ticks (time, symbol, source, token, exchange, mode, ltp, stream, "
            "stream_id) VALUES ($1, 'X.NSE', 'sim', '1', 'NSE', 'ltp', 1.5, 's', $2) "
            "ON CONFLICT DO NOTHING",
            at,
            stream_id,
        )
    )


async def seed(conn: asyncpg.Connection) -> None:
    manager = PartitionManager(days_ahead=0, clock=lambda: datetime(2026, 3, 10, tzinfo=UTC))
    await manager.ensure(conn, DAYS)
    for n, day in enumerate(DAYS):
        await insert_tick(conn, datetime(day.year, day.month, day.day, 10, tzinfo=UTC), f"{n}-0")
    await conn.execute(
        "INSERT INTO candles (symbol, interval, start, trading_day, exchange, open, high, low, "
        "close, status) VALUES ('X.NSE', '1m', $1, $2, 'NSE', 1, 2, 0.5, 1.5, 'closed')",
        datetime(2026, 3, 10, 3, 45, tzinfo=UTC),
        date(2026, 3, 10),
    )


async def run_plain(conn: asyncpg.Connection, statements: list[Statement]) -> None:
    """The statements that need no TimescaleDB, in one transaction as the migration runs them."""
    async with conn.transaction():
        for statement in statements:
            if not statement.timescale:
                await conn.execute(statement.sql)


async def test_plain_postgresql_reports_timescaledb_unavailable(
    conn: asyncpg.Connection,
) -> None:
    availability = await detect(conn)
    assert not availability.available
    assert await hypertables(conn) == set()
    assert should_use("auto", availability) is False
    with pytest.raises(TimescaleUnavailableError, match="TIMESCALEDB=on"):
        should_use("on", availability)


async def test_partitioned_ticks_are_managed_by_partition_maintenance(
    conn: asyncpg.Connection,
) -> None:
    assert await ticks_layout(conn) is TicksLayout.PARTITIONED
    manager = PartitionManager(days_ahead=1, clock=lambda: datetime(2026, 3, 10, tzinfo=UTC))
    await manager.ensure(conn, [])
    assert {partition_name(date(2026, 3, 10)), partition_name(date(2026, 3, 11))} <= (
        await tick_partitions(conn)
    )


async def test_migration_0006_is_a_no_op_on_plain_postgresql(
    conn: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMESCALEDB", "auto")
    await seed(conn)
    at_head = await schema(conn)
    await asyncio.to_thread(downgrade_sync, database_url, "0005")
    assert await asyncio.to_thread(current_revision_sync, database_url) == "0005"
    assert await schema(conn) == at_head
    await asyncio.to_thread(upgrade_sync, database_url, "head")
    assert await asyncio.to_thread(current_revision_sync, database_url) == HEAD
    assert await schema(conn) == at_head
    assert await conn.fetchval("SELECT count(*) FROM ticks") == len(DAYS)
    assert (
        await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 0
    )


async def test_timescaledb_on_fails_clearly_when_the_extension_is_unavailable(
    conn: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await asyncio.to_thread(downgrade_sync, database_url, "0005")
    monkeypatch.setenv("TIMESCALEDB", "on")
    with pytest.raises(TimescaleUnavailableError, match="TIMESCALEDB=on but the timescaledb"):
        await asyncio.to_thread(upgrade_sync, database_url, "head")
    assert await asyncio.to_thread(current_revision_sync, database_url) == "0005"
    monkeypatch.setenv("TIMESCALEDB", "off")
    await asyncio.to_thread(upgrade_sync, database_url, "head")
    assert await asyncio.to_thread(current_revision_sync, database_url) == HEAD


async def test_cli_redoes_migration_0006_and_reports_timescaledb_on_as_a_clear_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app, list(args))

    down = await invoke("db", "downgrade", "0005")
    assert down.exit_code == 0, down.output
    assert "migrated down to 0005" in down.output
    monkeypatch.setenv("TIMESCALEDB", "on")
    failed = await invoke("db", "upgrade")
    assert failed.exit_code == 1
    assert "TIMESCALEDB=on but the timescaledb extension is not available" in failed.output
    assert "revision: 0005" in (await invoke("db", "current")).output
    monkeypatch.setenv("TIMESCALEDB", "auto")
    assert (await invoke("db", "upgrade")).exit_code == 0
    assert f"revision: {HEAD}" in (await invoke("db", "current")).output


async def test_conversion_sql_keeps_rows_columns_and_names_and_round_trips(
    conn: asyncpg.Connection,
) -> None:
    await seed(conn)
    original = await schema(conn)

    await run_plain(conn, upgrade_statements(7))
    converted = await schema(conn)
    assert converted["ticks"] == {**original["ticks"], "relkind": "r"}  # type: ignore[dict-item]
    assert converted["candles"] == original["candles"]
    assert await conn.fetchval("SELECT to_regclass('ticks_native')") is None
    assert await tick_partitions(conn) == set()
    assert await conn.fetchval("SELECT count(*) FROM ticks") == len(DAYS)
    # The redelivery key still makes a repeated entry a no-op.
    at = datetime(2026, 3, 10, 10, tzinfo=UTC)
    assert await insert_tick(conn, at, "1-0") == "INSERT 0 0"
    assert await insert_tick(conn, at, "1-1") == "INSERT 0 1"

    # Partition maintenance steps aside from a ticks table it cannot partition.
    manager = PartitionManager(
        days_ahead=2, retention_days=1, clock=lambda: datetime(2026, 3, 20, tzinfo=UTC)
    )
    assert await manager.layout(conn) is TicksLayout.PLAIN
    await manager.ensure(conn, [date(2026, 3, 21)])
    assert await manager.drop_expired(conn) == []
    assert await tick_partitions(conn) == set()
    assert await conn.fetchval("SELECT count(*) FROM ticks") == len(DAYS) + 1

    await run_plain(conn, downgrade_statements())
    assert await schema(conn) == original
    assert await tick_partitions(conn) == {partition_name(day) for day in DAYS}
    assert all(partition_day(name) in DAYS for name in await tick_partitions(conn))
    assert await conn.fetchval(f"SELECT count(*) FROM {partition_name(DAYS[1])}") == 2
    assert await conn.fetchval("SELECT count(*) FROM candles WHERE status = 'closed'") == 1

    # And maintenance takes over again once the layout is re-read.
    manager.forget()
    assert await manager.layout(conn) is TicksLayout.PARTITIONED
    assert await manager.drop_expired(conn) == sorted(partition_name(day) for day in DAYS)


async def test_timescale_calls_resolve_against_the_2x_signatures_in_order(
    conn: asyncpg.Connection,
) -> None:
    await seed(conn)
    await conn.execute(TIMESCALE_STAND_IN)
    runnable = [
        s
        for s in upgrade_statements(5)
        # Needs the real extension: its library and its storage-parameter namespace.
        if not s.sql.startswith(
            ("CREATE EXTENSION", "ALTER TABLE ticks SET", "ALTER TABLE candles SET")
        )
    ]
    async with conn.transaction():
        for statement in runnable:
            await conn.execute(statement.sql)
    recorded = [
        (r["fn"], r["target"], dict(json.loads(r["args"])))
        for r in await conn.fetch("SELECT fn, target, args FROM ts_calls ORDER BY n")
    ]
    hypertable = {"time_column": "time", "chunk": "1 day", "migrate_data": False,
                  "default_indexes": False}  # fmt: skip
    assert recorded == [
        ("create_hypertable", "ticks", hypertable),
        ("create_hypertable", "candles", {**hypertable, "time_column": "start",
                                          "chunk": "7 days", "migrate_data": True}),
        ("add_compression_policy", "ticks", {"after": "1 day"}),
        ("add_compression_policy", "candles", {"after": "1 day"}),
        ("remove_retention_policy", "ticks", {"if_exists": True}),
        ("add_retention_policy", "ticks", {"after": "5 days"}),
    ]  # fmt: skip
    assert await conn.fetchval("SELECT count(*) FROM ticks") == len(DAYS)
    assert await conn.fetchval("SELECT count(*) FROM candles") == 1

    # The store's policy refresh (a changed TICK_RETENTION_DAYS) uses the same functions.
    await conn.execute("TRUNCATE ts_calls")
    await conn.execute(
        "INSERT INTO ts_calls (fn, target, args) VALUES ('create_hypertable', 'ticks', '{}')"
    )
    await apply_tick_retention(conn, 0)
    await apply_tick_retention(conn, 3)
    assert [tuple(r) for r in await conn.fetch("SELECT fn, args::text FROM ts_calls ORDER BY n")][
        1:
    ] == [
        ("remove_retention_policy", '{"if_exists": true}'),
        ("remove_retention_policy", '{"if_exists": true}'),
        ("add_retention_policy", '{"after": "3 days"}'),
    ]


async def test_the_stand_in_refuses_what_timescaledb_refuses(conn: asyncpg.Connection) -> None:
    """The stand-in's checks can fail: converting the partitioned or a filled table is refused."""
    await seed(conn)
    await conn.execute(TIMESCALE_STAND_IN)
    with pytest.raises(asyncpg.RaiseError, match="has to be a plain table"):
        await conn.execute("SELECT create_hypertable('ticks', 'time')")
    with pytest.raises(asyncpg.RaiseError, match="is not empty"):
        await conn.execute("SELECT create_hypertable('candles', 'start')")
    with pytest.raises(asyncpg.RaiseError, match="not a hypertable"):
        await conn.execute("SELECT add_retention_policy('ticks', INTERVAL '1 day')")


async def test_compression_settings_name_real_columns(conn: asyncpg.Connection) -> None:
    columns = {
        table: {
            r[0]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1",
                table,
            )
        }
        for table in ("ticks", "candles")
    }
    assert {"symbol", "time"} <= columns["ticks"]
    assert {"symbol", "interval", "start"} <= columns["candles"]
    # Hypertables need every unique key to include the time column they are partitioned on.
    for table, time_column in (("ticks", "time"), ("candles", "start")):
        keys = await conn.fetch(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = to_regclass($1) AND indisunique",
            table,
        )
        assert keys
        for key in keys:
            assert f"{time_column}" in key[0].rsplit("(", 1)[1], key[0]
    sqls = " ".join(s.sql for s in upgrade_statements(7))
    assert "compress_segmentby = 'symbol'" in sqls
    assert "compress_segmentby = 'symbol, \"interval\"'" in sqls

"""The TimescaleDB statements and the decision to use them, checked without a TimescaleDB server.

Every statement goes through PostgreSQL's own parser (libpg_query, via pglast); the plain
PostgreSQL part of the conversion runs for real in tests/integration/test_timescale.py.
"""

from __future__ import annotations

import re

import pglast
import pytest
from pglast import ast
from pydantic import ValidationError

from marketpulse.config import Settings
from marketpulse.store.timescale import (
    Availability,
    Statement,
    TimescaleUnavailableError,
    availability_from_row,
    downgrade_statements,
    parse_version,
    should_use,
    tick_retention_statements,
    upgrade_statements,
)


def single_statement(sql: str) -> ast.Node:
    parsed = pglast.parse_sql(sql)
    assert len(parsed) == 1, sql
    stmt = parsed[0].stmt
    assert stmt is not None
    return stmt


def call(statement: Statement) -> tuple[str, tuple[object, ...], dict[str, object]]:
    """(function name, positional constants, named arguments) of a ``SELECT f(...)``."""
    stmt = single_statement(statement.sql)
    assert isinstance(stmt, ast.SelectStmt)
    assert stmt.targetList is not None
    target = stmt.targetList[0]
    assert isinstance(target, ast.ResTarget)
    func = target.val
    assert isinstance(func, ast.FuncCall) and func.funcname is not None
    name = func.funcname[-1].sval
    positional: list[object] = []
    named: dict[str, object] = {}
    for arg in func.args or ():
        if isinstance(arg, ast.NamedArgExpr):
            assert arg.name is not None
            named[arg.name] = constant(arg.arg)
        else:
            positional.append(constant(arg))
    return name, tuple(positional), named


def constant(node: object) -> object:
    if isinstance(node, ast.TypeCast):  # INTERVAL '1 day'
        assert isinstance(node.arg, ast.A_Const)
        return ("interval", node.arg.val.sval)  # type: ignore[union-attr]
    assert isinstance(node, ast.A_Const), node
    value = node.val
    if isinstance(value, ast.Boolean):
        return value.boolval
    return value.sval  # type: ignore[union-attr]


def calls(statements: list[Statement]) -> list[tuple[str, tuple[object, ...], dict[str, object]]]:
    return [call(s) for s in statements if s.sql.startswith("SELECT")]


def storage_options(statement: Statement) -> dict[str, str | None]:
    """``ALTER TABLE t SET (a, b = 'x')`` → {"a": None, "b": "x"}."""
    stmt = single_statement(statement.sql)
    assert isinstance(stmt, ast.AlterTableStmt)
    options: dict[str, str | None] = {}
    assert stmt.cmds is not None
    for command in stmt.cmds:
        assert isinstance(command, ast.AlterTableCmd)
        for element in command.def_:  # type: ignore[union-attr]
            assert isinstance(element, ast.DefElem)
            key = f"{element.defnamespace}.{element.defname}"
            options[key] = None if element.arg is None else element.arg.sval  # type: ignore[union-attr]
    return options


def column_list(clause: str, text: str) -> list[str]:
    """Parse a TimescaleDB segmentby (GROUP BY) or orderby (ORDER BY) list; the columns named."""
    stmt = single_statement(f"SELECT FROM t {clause} {text}")
    assert isinstance(stmt, ast.SelectStmt)
    items = stmt.groupClause if clause == "GROUP BY" else stmt.sortClause
    assert items is not None
    names = []
    for item in items:
        ref = item.node if isinstance(item, ast.SortBy) else item
        assert isinstance(ref, ast.ColumnRef) and ref.fields is not None
        names.append(ref.fields[-1].sval)
    return names


def test_every_statement_is_valid_postgresql_syntax() -> None:
    for statement in [
        *upgrade_statements(7),
        *downgrade_statements(),
        *tick_retention_statements(0),
    ]:
        single_statement(statement.sql)


def test_downgrade_needs_no_timescale_function() -> None:
    assert not any(s.timescale for s in downgrade_statements())


def test_extension_is_created_before_anything_uses_it() -> None:
    statements = upgrade_statements(7)
    assert statements[0] == Statement("CREATE EXTENSION IF NOT EXISTS timescaledb", True)
    assert all("timescaledb" not in s.sql and "hypertable" not in s.sql
               for s in statements if not s.timescale)  # fmt: skip


def test_ticks_becomes_a_one_day_hypertable_while_empty_and_is_then_refilled() -> None:
    sqls = [s.sql for s in upgrade_statements(7)]
    hypertable = next(i for i, s in enumerate(sqls) if "create_hypertable('ticks'" in s)
    new_table = sqls.index("CREATE TABLE ticks (LIKE ticks_native INCLUDING ALL)")
    refill = sqls.index("INSERT INTO ticks SELECT * FROM ticks_native")
    drop_old = sqls.index("DROP TABLE ticks_native")
    assert new_table < hypertable < refill < drop_old
    name, args, named = call(upgrade_statements(7)[hypertable])
    assert (name, args) == ("create_hypertable", ("ticks", "time"))
    assert named["chunk_time_interval"] == ("interval", "1 day")
    assert "migrate_data" not in named  # empty when converted: nothing to migrate


def test_candles_becomes_a_hypertable_on_start_keeping_its_rows() -> None:
    (candles,) = [c for c in calls(upgrade_statements(7)) if c[:2] == (
        "create_hypertable", ("candles", "start"))]  # fmt: skip
    assert candles[2]["migrate_data"] is True


def test_both_tables_compress_after_a_day_segmented_by_instrument() -> None:
    statements = upgrade_statements(7)
    policies = {c[1][0]: c[1][1] for c in calls(statements) if c[0] == "add_compression_policy"}
    assert policies == {"ticks": ("interval", "1 day"), "candles": ("interval", "1 day")}
    alters = {s.sql.split()[2]: storage_options(s) for s in statements
              if s.sql.startswith("ALTER TABLE") and "SET (" in s.sql}  # fmt: skip
    assert set(alters) == {"ticks", "candles"}
    for options in alters.values():
        assert "timescaledb.compress" in options
    ticks, candles = alters["ticks"], alters["candles"]
    assert column_list("GROUP BY", ticks["timescaledb.compress_segmentby"] or "") == ["symbol"]
    assert column_list("ORDER BY", ticks["timescaledb.compress_orderby"] or "") == ["time"]
    assert column_list("GROUP BY", candles["timescaledb.compress_segmentby"] or "") == [
        "symbol",
        "interval",
    ]
    assert column_list("ORDER BY", candles["timescaledb.compress_orderby"] or "") == ["start"]


def test_compression_policies_come_after_compression_is_enabled() -> None:
    sqls = [s.sql for s in upgrade_statements(7)]
    for table in ("ticks", "candles"):
        enable = next(i for i, s in enumerate(sqls) if s.startswith(f"ALTER TABLE {table} SET"))
        policy = next(i for i, s in enumerate(sqls) if f"add_compression_policy('{table}'" in s)
        assert enable < policy


@pytest.mark.parametrize("days", [1, 7, 30])
def test_tick_retention_policy_follows_tick_retention_days(days: int) -> None:
    retention = [c for c in calls(upgrade_statements(days)) if "retention" in c[0]]
    assert retention == [
        ("remove_retention_policy", ("ticks",), {"if_exists": True}),
        ("add_retention_policy", ("ticks", ("interval", f"{days} days")), {}),
    ]
    assert calls(tick_retention_statements(days)) == retention


def test_tick_retention_zero_keeps_ticks_forever() -> None:
    for statements in (upgrade_statements(0), tick_retention_statements(0)):
        assert not any(c[0] == "add_retention_policy" for c in calls(statements))
    assert calls(tick_retention_statements(0)) == [
        ("remove_retention_policy", ("ticks",), {"if_exists": True})
    ]


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="tick_retention_days"):
        upgrade_statements(-1)
    with pytest.raises(ValueError, match="tick_retention_days"):
        tick_retention_statements(-1)


def test_timescaledb_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIMESCALEDB", raising=False)
    assert Settings().timescaledb == "auto"
    monkeypatch.setenv("TIMESCALEDB", "on")
    assert Settings().timescaledb == "on"
    monkeypatch.setenv("TIMESCALEDB", "maybe")
    with pytest.raises(ValidationError, match="timescaledb"):
        Settings()


def test_downgrade_restores_the_names_migrations_0001_and_0002_gave() -> None:
    sqls = "\n".join(s.sql for s in downgrade_statements())
    for name in ("ticks_symbol_time_idx", "ticks_stream_stream_id_time_key", "candles_pkey",
                 "candles_live_idx"):  # fmt: skip
        assert re.search(rf"TO {name}\b", sqls), name
    assert "PARTITION BY RANGE (time)" in sqls


@pytest.mark.parametrize(
    ("text", "version"),
    [("2.14.2", (2, 14, 2)), ("2.11.0-dev", (2, 11, 0)), ("2.9", (2, 9)), ("", ())],
)
def test_parse_version(text: str, version: tuple[int, ...]) -> None:
    assert parse_version(text) == version


def test_off_never_converts_even_when_available() -> None:
    assert should_use("off", Availability("2.17.2", None)) is False


def test_auto_converts_only_with_a_recent_enough_extension() -> None:
    assert should_use("auto", Availability()) is False
    assert should_use("auto", Availability("2.10.3", None)) is False
    assert should_use("auto", Availability("2.11.0", None)) is True
    assert should_use("auto", Availability("2.17.2", "2.17.2")) is True


def test_the_installed_version_counts_over_the_default_one() -> None:
    assert should_use("auto", Availability("2.17.2", "2.9.0")) is False


def test_on_fails_clearly_when_the_server_has_no_timescaledb() -> None:
    with pytest.raises(TimescaleUnavailableError, match=r"TIMESCALEDB=on .* not available"):
        should_use("on", Availability())


def test_on_fails_clearly_when_the_extension_is_too_old() -> None:
    with pytest.raises(TimescaleUnavailableError, match=r"2\.10\.1 is older than the 2\.11"):
        should_use("on", Availability("2.10.1", None))


def test_on_converts_when_available() -> None:
    assert should_use("on", Availability("2.14.0", None)) is True


def test_availability_from_the_detection_query_row() -> None:
    assert availability_from_row(None) == Availability()
    assert not availability_from_row(None).available
    found = availability_from_row(("2.14.2", None))
    assert found.available and found.default_version == "2.14.2"

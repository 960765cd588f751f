"""The embedded launchers' decisions, without starting any server."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from pathlib import Path

import pytest

from marketpulse import embedded
from marketpulse.config import Settings
from marketpulse.embedded import (
    PG_SYSTEM_USER,
    EmbeddedError,
    EmbeddedServices,
    postgres_system_user,
    resolve_settings,
)


def test_root_runs_postgres_as_the_system_user() -> None:
    assert postgres_system_user(0) == PG_SYSTEM_USER


@pytest.mark.parametrize("euid", [1, 1000, 65534])
def test_non_root_runs_postgres_as_itself(euid: int) -> None:
    assert postgres_system_user(euid) is None


def _stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 0, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "missing"),
    [
        (0o700, 0, 0, 0o001),  # a stranger: only "other" is consulted
        (0o701, 0, 0, 0),
        (0o700, 0, 42, 0o010),  # group member: "other" bits would not help
        (0o600, 7, 0, 0o100),  # owner
        (0o755, 0, 0, 0),
    ],
)
def test_missing_bits_widens_only_the_class_that_applies(
    mode: int, uid: int, gid: int, missing: int
) -> None:
    user = embedded._RunAs("pg", 7, 42)
    assert embedded._missing_bits(_stat(mode, uid, gid), user, 0o1) == missing


def test_missing_bits_for_read_and_search() -> None:
    user = embedded._RunAs("pg", 7, 42)
    assert embedded._missing_bits(_stat(0o700, 0, 0), user, 0o5) == 0o005
    assert embedded._missing_bits(_stat(0o704, 0, 0), user, 0o5) == 0o001


def test_home_lock_names_the_holder(tmp_path: Path) -> None:
    first = embedded._HomeLock(tmp_path)
    first.acquire()
    try:
        assert (tmp_path / "embedded.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(EmbeddedError, match=rf"in use by PID {os.getpid()}; stop it or set"):
            embedded._HomeLock(tmp_path).acquire()
    finally:
        first.release()
    second = embedded._HomeLock(tmp_path)
    second.acquire()  # released means free again
    second.release()


def test_pid_file_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "valkey.pid"
    record = embedded._PidRecord(owner=1, pid=2, port=3)
    embedded._write_pid_file(path, record)
    assert embedded._read_pid_file(path) == record
    path.write_text("{not json")
    assert embedded._read_pid_file(path) is None
    path.write_text('{"owner": 1}')
    assert embedded._read_pid_file(path) is None
    assert embedded._read_pid_file(tmp_path / "missing.pid") is None


def test_log_tail_reads_only_this_start(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old run\n")
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.writelines(f"line {i}\n" for i in range(30))
    tail = embedded._log_tail(log, offset).splitlines()
    assert tail == [f"line {i}" for i in range(10, 30)]
    assert embedded._log_tail(log, log.stat().st_size) == "(no output)"
    assert "unreadable" in embedded._log_tail(tmp_path / "nope.log")


def test_postgres_falls_back_to_tcp_only_when_socket_path_is_too_long(tmp_path: Path) -> None:
    short = embedded._Postgres(tmp_path, tmp_path)
    argv = short.argv(5432)
    assert argv[argv.index("-k") + 1] == str(tmp_path / "postgres" / "run")
    deep = tmp_path / ("x" * 120)
    argv = embedded._Postgres(deep, tmp_path).argv(5432)
    assert argv[argv.index("-k") + 1] == ""
    assert argv[argv.index("-h") + 1] == "127.0.0.1"


def test_valkey_listens_on_loopback_and_keeps_its_command_line(tmp_path: Path) -> None:
    argv = embedded._Valkey(tmp_path, tmp_path / "valkey-server").argv(6390)
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options["--bind"] == "127.0.0.1"
    assert options["--daemonize"] == "no"
    assert options["--dir"] == str(tmp_path / "valkey")
    assert options["--set-proc-title"] == "no"
    assert options["--save"]
    throwaway = embedded._Valkey(tmp_path, tmp_path / "valkey-server", snapshots=False)
    assert dict(zip(*[iter(throwaway.argv(6390)[1:])] * 2, strict=True))["--save"] == ""


def test_child_setup_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_PDEATHSIG_ENABLED", False)
    assert embedded._child_setup(signal.SIGTERM) is None


def test_resolve_settings_passes_configured_servers_through(tmp_path: Path) -> None:
    settings = Settings(
        redis_url="redis://example:6379/0",
        database_url="postgresql://u@example/db",
        marketpulse_home=tmp_path,
    )
    with contextlib.ExitStack() as stack:
        assert resolve_settings(settings, stack) is settings
    assert not any(tmp_path.iterdir())  # nothing started, not even a lock file


def test_wanting_nothing_starts_nothing(tmp_path: Path) -> None:
    with EmbeddedServices(tmp_path, want_redis=False, want_postgres=False) as services:
        assert services.child_pids() == []
        assert services.redis_url is None
        assert services.database_url is None

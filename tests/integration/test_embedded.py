"""The embedded launchers against real Valkey and PostgreSQL processes.

Nothing is mocked except, in a few failure tests, the binary or the port handed to a launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
import redis.asyncio as aioredis

from marketpulse import embedded
from marketpulse.config import Settings
from marketpulse.embedded import EmbeddedError, EmbeddedServices, resolve_settings


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _process_tree(pids: list[int]) -> list[int]:
    tree = list(pids)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return tree


def _servers_under(home: Path) -> list[psutil.Process]:
    """Our descendants serving ``home``: the module's shared servers must not count."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(str(home) in arg for arg in proc.cmdline()):
                found.append(proc)
    return found


async def _select_one(url: str) -> tuple[int, str]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT 1 AS one, current_database() AS db")
        assert row is not None
        return row["one"], row["db"]
    finally:
        await conn.close()


async def _ping(url: str) -> bool:
    client = aioredis.Redis.from_url(url)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


@contextlib.contextmanager
def _private_home() -> Iterator[Path]:
    """A home outside pytest's basetemp when PostgreSQL must reach it as another user.

    Every pytest session started as root resets ``/tmp/pytest-of-root`` to mode 0700, so a
    concurrent session would revoke the search permission the launcher granted there.
    """
    home = Path(tempfile.mkdtemp(prefix="mp-embedded-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def home() -> Iterator[Path]:
    with _private_home() as path:
        yield path


@pytest.fixture(scope="module")
def shared() -> Iterator[EmbeddedServices]:
    with (
        _private_home() as path,
        EmbeddedServices(path, want_redis=True, want_postgres=True) as services,
    ):
        yield services


async def test_both_servers_answer(shared: EmbeddedServices) -> None:
    assert shared.redis_url is not None
    assert shared.database_url is not None
    assert await _ping(shared.redis_url)
    assert await _select_one(shared.database_url) == (1, "marketpulse")
    assert shared.database_url.startswith("postgresql://postgres@127.0.0.1:")


def test_servers_listen_on_loopback_only(shared: EmbeddedServices) -> None:
    pids = shared.child_pids()
    assert len(pids) == 2
    for pid in pids:
        listening = [
            conn.laddr
            for conn in psutil.Process(pid).net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        ]
        assert listening
        assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_postgres_runs_unprivileged(shared: EmbeddedServices) -> None:
    postmaster = psutil.Process(shared.child_pids()[0])
    assert postmaster.name() == "postgres"
    if os.geteuid() == 0:
        assert postmaster.username() == embedded.PG_SYSTEM_USER
        assert postmaster.gids().real != 0
    else:
        assert postmaster.uids().real == os.geteuid()


def test_second_owner_gets_a_clear_error(shared: EmbeddedServices) -> None:
    before = shared.child_pids()
    second = EmbeddedServices(shared.home, want_redis=True, want_postgres=False)
    with pytest.raises(EmbeddedError) as info:
        second.start()
    assert str(info.value) == (
        f"embedded servers under {shared.home} are in use by PID {os.getpid()}; "
        "stop it or set MARKETPULSE_HOME to another directory"
    )
    assert shared.child_pids() == before  # the refused owner touched nothing


def test_valkey_for_a_throwaway_home_takes_no_snapshots(home: Path) -> None:
    with EmbeddedServices(home, want_redis=True, want_postgres=False,
                          redis_snapshots=False) as services:  # fmt: skip
        assert services.redis_url is not None
        client = redis.Redis.from_url(services.redis_url)
        try:
            assert client.config_get("save") == {"save": ""}
        finally:
            client.close()


async def test_stop_leaves_nothing_and_restart_keeps_data(home: Path) -> None:
    services = EmbeddedServices(home, want_redis=True, want_postgres=True)
    # Started from a thread that ends at once: the servers must not die with it (the
    # parent-death signal is per forking thread).
    starter = threading.Thread(target=services.start)
    starter.start()
    starter.join()
    await asyncio.sleep(0.2)
    try:
        assert services.redis_url is not None
        assert services.database_url is not None
        assert await _ping(services.redis_url)
        conn = await asyncpg.connect(services.database_url)
        try:
            await conn.execute("CREATE TABLE survivor (v text)")
            await conn.execute("INSERT INTO survivor VALUES ('still here')")
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(services.redis_url)
        await client.set("survivor", "still here")
        await client.aclose()
        tree = _process_tree(services.child_pids())
        assert len(tree) > 2  # the postmaster's auxiliary processes are included
    finally:
        services.stop()

    assert _wait_gone(tree, 0)
    assert _servers_under(home) == []
    assert services.child_pids() == []
    assert services.redis_url is None
    assert not (home / "valkey.pid").exists()
    assert not (home / "postgres.pid").exists()
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()

    lines: list[str] = []
    with EmbeddedServices(home, want_redis=True, want_postgres=True, log=lines.append) as again:
        assert again.database_url is not None
        assert again.redis_url is not None
        conn = await asyncpg.connect(again.database_url)
        try:
            assert await conn.fetchval("SELECT v FROM survivor") == "still here"
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(again.redis_url)
        assert await client.get("survivor") == b"still here"
        await client.aclose()
    assert not any("initdb" in line for line in lines)


_OWNER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from marketpulse import embedded

    embedded._PDEATHSIG_ENABLED = sys.argv[2] == "1"
    services = embedded.EmbeddedServices(Path(sys.argv[1]), want_redis=True, want_postgres=True)
    services.start()
    print(json.dumps(services.child_pids()), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("pdeathsig", [True, False], ids=["pdeathsig", "true-orphans"])
async def test_crashed_owner_leaves_the_home_usable(home: Path, pdeathsig: bool) -> None:
    owner = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", _OWNER, str(home), "1" if pdeathsig else "0"],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert owner.stdout is not None
        line = await owner.stdout.readline()
        assert line, "the owner process failed to start its servers"
        old = _process_tree(json.loads(line))

        with pytest.raises(EmbeddedError, match=rf"in use by PID {owner.pid}; stop it"):
            EmbeddedServices(home, want_redis=True, want_postgres=False).start()
    finally:
        owner.kill()
        await owner.wait()

    if pdeathsig:
        assert _wait_gone(old, 30), "children should stop when their owner dies"
    else:
        await asyncio.sleep(0.5)
        assert not any(_gone(pid) for pid in old[:2]), "expected orphans to survive the owner"

    lines: list[str] = []
    with EmbeddedServices(home, want_redis=True, want_postgres=True, log=lines.append) as services:
        assert _wait_gone(old, 0)
        assert services.redis_url is not None
        assert services.database_url is not None
        assert await _ping(services.redis_url)
        assert await _select_one(services.database_url) == (1, "marketpulse")
    if not pdeathsig:
        assert any("orphaned embedded Valkey" in line for line in lines)
        assert any("orphaned embedded PostgreSQL" in line for line in lines)


def test_stale_postmaster_pid_is_removed(home: Path) -> None:
    with EmbeddedServices(home, want_redis=False, want_postgres=True):
        pass
    data = home / "postgres" / "data"
    dead = subprocess.Popen(["true"])
    dead.wait()
    (data / "postmaster.pid").write_text(f"{dead.pid}\n{data}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")
    lines: list[str] = []
    with EmbeddedServices(home, want_redis=False, want_postgres=True, log=lines.append) as s:
        assert s.database_url is not None
    assert any("removed stale" in line for line in lines)


def test_missing_binary(tmp_path: Path) -> None:
    services = EmbeddedServices(
        tmp_path, want_redis=True, want_postgres=False, valkey_binary=tmp_path / "nope"
    )
    with pytest.raises(EmbeddedError, match=r"Valkey binary not found at .*nope"):
        services.start()


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_broken_binary_reports_its_log_and_leaves_the_home_usable(tmp_path: Path) -> None:
    broken = _script(tmp_path / "valkey-server", 'echo "FATAL: bad config line 1" >&2; exit 3')
    home = tmp_path / "home"
    services = EmbeddedServices(home, want_redis=True, want_postgres=False, valkey_binary=broken)
    with pytest.raises(EmbeddedError) as info:
        services.start()
    message = str(info.value)
    assert "exited with status 3" in message
    assert "FATAL: bad config line 1" in message
    assert str(home / "valkey" / "valkey.log") in message
    assert services.child_pids() == []
    with EmbeddedServices(home, want_redis=True, want_postgres=False) as working:
        assert redis.Redis.from_url(working.redis_url or "").ping()


def test_initdb_failure_is_reported(home: Path) -> None:
    bin_dir = home / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "initdb", 'echo "initdb: error: no space left on device" >&2; exit 1')
    _script(bin_dir / "postgres", "exit 1")
    _script(bin_dir / "psql", "exit 1")
    services = EmbeddedServices(
        home, want_redis=False, want_postgres=True, postgres_bin_dir=bin_dir
    )
    with pytest.raises(EmbeddedError, match=r"(?s)initdb .*failed.*no space left on device"):
        services.start()


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_clash_is_reported(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_free_port", lambda preferred=0: occupied_port)
    services = EmbeddedServices(tmp_path, want_redis=True, want_postgres=False)
    with pytest.raises(EmbeddedError, match=rf"(?s)port {occupied_port} .*Address already in use"):
        services.start()
    assert services.child_pids() == []


def test_port_race_is_retried(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([occupied_port])
    real = embedded._free_port
    monkeypatch.setattr(embedded, "_free_port", lambda preferred=0: next(ports, None) or real())
    with EmbeddedServices(tmp_path, want_redis=True, want_postgres=False) as services:
        assert services.redis_url is not None
        assert f":{occupied_port}/" not in services.redis_url
        assert redis.Redis.from_url(services.redis_url).ping()


async def test_resolve_settings_fills_in_only_what_is_missing(tmp_path: Path) -> None:
    settings = Settings(
        redis_url=None, database_url="postgresql://u@example/db", marketpulse_home=tmp_path
    )
    with contextlib.ExitStack() as stack:
        resolved = resolve_settings(settings, stack)
        assert resolved.database_url == "postgresql://u@example/db"
        assert resolved.redis_url is not None
        assert await _ping(resolved.redis_url)
        assert not (tmp_path / "postgres").exists()
        assert len(_servers_under(tmp_path)) == 1
    assert _servers_under(tmp_path) == []


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat_search for p in [path, *path.parents])


stat_search = 0o001


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="becoming another user needs root; as non-root every other test covers this path",
)
async def test_non_root_runs_both_servers_as_the_current_user(home: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    pg_bin = embedded._postgres_bin_dir()
    if not (_reachable_by_others(embedded.valkey_binary()) and _reachable_by_others(pg_bin)):
        pytest.skip("the server binaries are not reachable by an unprivileged user here")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    # Forked rather than exec'd: the interpreter may live where "nobody" cannot reach it.
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with EmbeddedServices(home, want_redis=True, want_postgres=True) as services:
                urls = [services.redis_url, services.database_url]
                report = {"urls": urls, "pids": services.child_pids()}
                os.write(report_w, json.dumps(report).encode() + b"\n")
                os.read(go_r, 1)
            status = 0
        except BaseException as exc:
            os.write(report_w, json.dumps({"error": repr(exc)}).encode() + b"\n")
        finally:
            os._exit(status)
    os.close(report_w)
    os.close(go_r)
    try:
        with os.fdopen(report_r) as reader:
            report = json.loads(reader.readline())
        assert "error" not in report, report["error"]
        redis_url, database_url = report["urls"]
        for pid in report["pids"]:
            assert psutil.Process(pid).uids().real == nobody.pw_uid
        assert await _ping(redis_url)
        assert await _select_one(database_url) == (1, "marketpulse")
        assert (home / "postgres" / "data").stat().st_uid == nobody.pw_uid
    finally:
        os.write(go_w, b"x")
        os.close(go_w)
        _, wait_status = await asyncio.to_thread(os.waitpid, child, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert _wait_gone(_process_tree(report["pids"]), 5)

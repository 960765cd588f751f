"""CPU and peak RSS per role, sampled with psutil from outside the processes measured.

A role is a set of processes (the Kite generator, each service process, the client workers, a
local Redis, PostgreSQL's postmaster and its backends). CPU is user + system seconds over the
measuring window divided by its length (1.0 = one core busy); RSS is sampled every half second
and the peak of the role's sum is kept. For soak runs the window's first and last fifths are
compared too: ``rss_start``/``rss_end`` are the role's highest RSS in each, so steady growth
(a leak) shows as ``rss_end`` well above ``rss_start`` while a one-off peak does not.

On Linux each role's *run-queue wait* over the window is read from ``/proc/<pid>/task/*/schedstat``
as well: the time its threads were ready to run but waiting for a CPU. With every process of a
run on the same cores, that — not the CPU a role uses — is what turns into latency, so a role
whose wait is a large fraction of its CPU time was starved, whatever its own cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(slots=True)
class RoleUsage:
    """One role's cost over the window."""

    cpu_seconds: float = 0.0
    cores: float = 0.0
    peak_rss: int = 0
    processes: int = 0
    rss_start: int = 0
    rss_end: int = 0
    wait_seconds: float | None = None
    """Run-queue wait of the role's threads over the window (``None`` where not readable)."""


@dataclass(slots=True)
class _Role:
    pids: set[int]
    with_children: bool
    peak_rss: int = 0
    cpu_start: dict[int, float] = field(default_factory=dict)
    wait_start: dict[int, float] = field(default_factory=dict)
    window_rss: list[tuple[float, int]] = field(default_factory=list)


def _processes(role: _Role) -> list[psutil.Process]:
    out = []
    for pid in role.pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            out.append(proc)
            if role.with_children:
                out.extend(proc.children(recursive=True))
    return out


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def run_queue_wait(pid: int) -> float | None:
    """Seconds the process's threads have spent runnable but waiting for a CPU (the second
    field of each thread's ``schedstat``); ``None`` where the kernel does not expose it."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    except OSError:
        return None
    return total / 1e9


class Monitor:
    """Tracks roles by pid; :meth:`sample` keeps peaks, :meth:`mark` opens/closes the window."""

    def __init__(self) -> None:
        self._roles: dict[str, _Role] = {}
        self._window_start = 0.0
        self._in_window = False
        self.usage: dict[str, RoleUsage] = {}

    def watch(self, role: str, pid: int, *, with_children: bool = False) -> None:
        entry = self._roles.setdefault(role, _Role(set(), with_children))
        entry.pids.add(pid)

    def sample(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for role in self._roles.values():
            rss = 0
            for proc in _processes(role):
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
            role.peak_rss = max(role.peak_rss, rss)
            if self._in_window:
                role.window_rss.append((now, rss))

    async def run(self, interval: float = 0.5) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(interval)

    def start_window(self, now: float) -> None:
        self._window_start = now
        self._in_window = True
        for role in self._roles.values():
            role.cpu_start = {}
            role.wait_start = {}
            role.window_rss = []
            for proc in _processes(role):
                with contextlib.suppress(psutil.Error):
                    role.cpu_start[proc.pid] = _cpu(proc)
                wait = run_queue_wait(proc.pid)
                if wait is not None:
                    role.wait_start[proc.pid] = wait

    def end_window(self, now: float) -> dict[str, RoleUsage]:
        seconds = max(now - self._window_start, 1e-9)
        self.sample(now)
        self._in_window = False
        fifth = seconds / 5
        for name, role in self._roles.items():
            used = 0.0
            waited: float | None = None
            procs = _processes(role)
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    used += _cpu(proc) - role.cpu_start.get(proc.pid, 0.0)
                wait = run_queue_wait(proc.pid)
                if wait is not None:
                    # A thread that ended during the window takes its wait with it: never < 0.
                    waited = (waited or 0.0) + max(0.0, wait - role.wait_start.get(proc.pid, 0.0))
            early = [rss for t, rss in role.window_rss if t <= self._window_start + fifth]
            late = [rss for t, rss in role.window_rss if t >= now - fifth]
            self.usage[name] = RoleUsage(
                used, used / seconds, role.peak_rss, len(procs),
                max(early, default=0), max(late, default=0), waited,
            )  # fmt: skip
        return self.usage

    def finish(self) -> dict[str, RoleUsage]:
        """Peak RSS after the drain too (the window's CPU figures stay)."""
        self.sample()
        for name, role in self._roles.items():
            usage = self.usage.setdefault(name, RoleUsage())
            usage.peak_rss = role.peak_rss
        return self.usage


def local_server_pid(url: str) -> int | None:
    """The pid listening on a loopback server URL's port, when this user may see it."""
    parsed = urlparse(url)
    if (parsed.hostname or "127.0.0.1") not in LOOPBACK:
        return None
    port = parsed.port or (6379 if parsed.scheme.startswith("redis") else 5432)
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    except (psutil.Error, OSError):
        return None
    return None

"""Benchmarks (not tests): ``python -m bench [name ...]`` or ``make bench``.

Every ``bench/bench_*.py`` module exposes ``run() -> list[Result]``; ``python -m bench`` finds
them, runs them and prints one table. A result reports the best of several timed runs, because
on a shared machine the minimum is the measurement least disturbed by other processes.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import TypedDict


class Result(TypedDict, total=False):
    name: str  # what was measured, one line
    ns_per_op: float  # best time per operation (usually per tick)
    ops_per_s: float  # 1e9 / ns_per_op
    reference: str  # name of the result this one is compared with
    ratio: float  # reference ns_per_op / this ns_per_op: > 1 means faster than the reference


def measure(
    fn: Callable[[], object], *, ops_per_call: int = 1, repeat: int = 9, min_time: float = 0.2
) -> float:
    """Best nanoseconds per operation of ``fn`` over ``repeat`` runs of about ``min_time`` s."""
    fn()  # warm up: caches, allocator arenas, lazily built tables
    calls = 1
    while True:  # calibrate so one run lasts about min_time
        started = time.thread_time_ns()
        for _ in range(calls):
            fn()
        elapsed = time.thread_time_ns() - started
        if elapsed >= min_time * 1e9 / 4 or calls >= 1 << 24:
            break
        calls *= 2
    calls = max(1, int(calls * min_time * 1e9 / max(elapsed, 1)))
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time_ns() - started) / (calls * ops_per_call))
    return best


def result(name: str, ns_per_op: float, reference: Result | None = None) -> Result:
    out = Result(name=name, ns_per_op=ns_per_op, ops_per_s=1e9 / ns_per_op)
    if reference is not None:
        out["reference"] = reference["name"]
        out["ratio"] = reference["ns_per_op"] / ns_per_op
    return out


def machine() -> dict[str, str]:
    """Where the numbers come from, for BENCHMARKS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }

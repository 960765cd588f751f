"""The harness's per-role run-queue wait, read from the kernel's scheduler statistics."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from marketpulse.loadtest.monitor import run_queue_wait


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/*/schedstat")
def test_busy_processes_beyond_the_cpu_count_show_run_queue_wait() -> None:
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        before = [run_queue_wait(p.pid) for p in busy]
        time.sleep(1.0)
        after = [run_queue_wait(p.pid) for p in busy]
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert None not in before and None not in after
    waited = sum(a - b for a, b in zip(after, before, strict=True))  # type: ignore[operator]
    # One process more than there are CPUs: together they waited for a CPU a good part of it.
    assert 0.2 < waited < len(busy) * 1.5


def test_a_process_that_is_gone_has_no_wait() -> None:
    assert run_queue_wait(2**22 + 12345) is None

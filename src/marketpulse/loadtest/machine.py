"""Where a run's numbers come from: CPU model, core count, Python, and the load around it.

The load average before and after a run is part of the result, because on a shared machine it
says more about the numbers than the CPU model does.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def load_average() -> str:
    """The 1/5/15-minute load averages, or ``unknown`` where the OS has none."""
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def describe_machine() -> dict[str, Any]:
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
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_before": load_average(),
    }

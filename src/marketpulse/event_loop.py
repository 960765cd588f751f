"""The asyncio event loop marketpulse's long-running processes run on.

uvloop (libuv underneath) is used when it is installed — ``uvicorn[standard]`` brings it on
Linux and macOS — because every tick crosses several event loops on its way to a WebSocket
client (ingest, Redis replies, the API's fan-out, the client), and uvloop's cheaper callbacks
and socket I/O cut the latency tail: in ``marketpulse bench e2e`` at 10k ticks/s with 100
clients, p99.9 fell from about 40 ms to about 28 ms and the worst case from about 70 ms to
about 34 ms (BENCHMARKS.md). ``EVENT_LOOP=asyncio`` keeps the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on uvloop unless ``choice`` is ``asyncio`` or (for ``auto``) uvloop
    is not installed; ``uvloop`` without uvloop is an error that says where it comes from."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise RuntimeError(
                    "EVENT_LOOP=uvloop, but uvloop is not installed (it comes with "
                    "uvicorn[standard] on Linux and macOS); use EVENT_LOOP=auto or asyncio"
                ) from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)

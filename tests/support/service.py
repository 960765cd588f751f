"""Run the real service (``marketpulse.service.serve``) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

from marketpulse.config import Settings
from marketpulse.service import ALL_ROLES, Endpoints, Role, serve


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, roles: frozenset[Role] = ALL_ROLES
) -> AsyncIterator[Endpoints]:
    """Start ``roles`` on a free port; stop them (graceful shutdown) on exit."""
    stop = asyncio.Event()
    ready: asyncio.Future[Endpoints | None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, roles, on_ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # startup failed: raise its error
    endpoints = ready.result()
    assert endpoints is not None
    try:
        yield endpoints
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=60)
        if not done:
            # Say where it is stuck rather than hang the suite: every task's stack.
            stacks = io.StringIO()
            for other in asyncio.all_tasks():
                print(f"--- {other.get_name()}", file=stacks)
                other.print_stack(file=stacks)
            task.cancel()
            raise AssertionError(f"the service did not stop within 60 s:\n{stacks.getvalue()}")
        task.result()

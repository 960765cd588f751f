"""The ASGI app around a :class:`~marketpulse.emulators.market_loop.MarketEmulator`.

Every queue-based broker emulator is served the same way: the app holds the emulator in
``app.state.emulator`` (where its handlers and the tests find it), runs its market for the
app's lifetime, closes every socket with 1001 when the server stops, and serves no API docs
(a broker has none at these paths, and the emulator's own paths may collide with them). The
broker supplies its routers and anything else it puts on the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI

from marketpulse.emulators.market_loop import MarketEmulator

log = logging.getLogger(__name__)


def market_app(
    emulator: MarketEmulator[Any, Any], *, title: str, routers: Iterable[APIRouter]
) -> FastAPI:
    """An app serving ``routers`` whose lifespan runs ``emulator``'s market."""
    name = emulator.name

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(emulator.run(), name=f"{name}-emulator")
        task.add_done_callback(lambda done: _report_crash(name, done))
        try:
            yield
        finally:
            emulator.drop_all(1001, "emulator shutting down")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator
    for router in routers:
        app.include_router(router)
    return app


def _report_crash(name: str, task: asyncio.Task[None]) -> None:
    """A market that stops on its own is a bug: say so at once rather than at shutdown."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s emulator market stopped: %r", name, task.exception())

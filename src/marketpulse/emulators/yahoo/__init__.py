"""A Yahoo Finance emulator: the streamer WebSocket, the v8 chart API and the cookie/crumb
endpoints on one port.

``marketpulse emulate yahoo --port 8767`` serves it; point the feed at it with
``YAHOO_WS_URL=ws://127.0.0.1:8767/?version=2``,
``YAHOO_CHART_URL=http://127.0.0.1:8767/v8/finance/chart``, ``YAHOO_COOKIE_URL=http://127.0.0.1:8767/``
and ``YAHOO_CRUMB_URL=http://127.0.0.1:8767/v1/test/getcrumb``. No credentials. yfinance connects
to it too (``yf.WebSocket(url="ws://127.0.0.1:8767/?version=2")``; ``history()`` after pointing
its ``_BASE_URL_`` at the emulator, spec §B4).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.yahoo import chart, stream
from marketpulse.emulators.yahoo.core import (
    TEST_CRUMB,
    ConnectionLog,
    EmulatedConnection,
    Listing,
    YahooEmulator,
)

__all__ = ["TEST_CRUMB", "ConnectionLog", "EmulatedConnection", "Listing", "YahooEmulator",
           "build_app"]  # fmt: skip


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`YahooEmulator` (keyword
    ``settings`` such as ``max_symbols`` or ``require_crumb`` go to it)."""
    emulator = YahooEmulator(options, **settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(emulator.run(), name="yahoo-emulator")
        try:
            yield
        finally:
            emulator.drop_all(1001, "emulator shutting down")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(title="Yahoo Finance emulator (marketpulse)", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.emulator = emulator
    app.include_router(stream.router)
    app.include_router(chart.router)
    return app

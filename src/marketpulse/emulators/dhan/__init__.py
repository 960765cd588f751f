"""A DhanHQ v2 emulator: the market feed, the 20-level depth socket and the REST API on one port.

``marketpulse emulate dhan --port 8766`` serves it; point the feed at it with
``DHAN_WS_URL=ws://127.0.0.1:8766``, ``DHAN_DEPTH_WS_URL=ws://127.0.0.1:8766/twentydepth``,
``DHAN_API_URL=http://127.0.0.1:8766`` and
``DHAN_SCRIP_MASTER_URL=http://127.0.0.1:8766/api-data/api-scrip-master.csv``. Test credentials:
client id ``1000000001``, access token ``test-dhan-access-token``. The official SDK connects to it
too (``MarketFeed.market_feed_wss = "ws://127.0.0.1:8766"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.dhan import feed, rest
from marketpulse.emulators.dhan.core import (
    TEST_ACCESS_TOKEN,
    TEST_CLIENT_ID,
    ConnectionLog,
    DhanEmulator,
    EmulatedConnection,
)
from marketpulse.emulators.options import EmulatorOptions

__all__ = ["TEST_ACCESS_TOKEN", "TEST_CLIENT_ID", "ConnectionLog", "DhanEmulator",
           "EmulatedConnection", "build_app"]  # fmt: skip

log = logging.getLogger(__name__)


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`DhanEmulator` (keyword
    ``settings`` such as ``max_connections`` or ``max_instruments`` go to it)."""
    emulator = DhanEmulator(options, **settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(emulator.run(), name="dhan-emulator")
        try:
            yield
        finally:
            emulator.drop_all(1001, "emulator shutting down")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(title="DhanHQ emulator (marketpulse)", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.emulator = emulator
    app.state.server_options = {
        "ws_ping_interval": emulator.ping_interval, "ws_ping_timeout": emulator.ping_timeout,
    }  # fmt: skip
    app.include_router(feed.router)
    app.include_router(rest.router)
    return app

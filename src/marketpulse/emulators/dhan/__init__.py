"""A DhanHQ v2 emulator: the market feed, the 20-level depth socket and the REST API on one port.

``marketpulse emulate dhan --port 8766`` serves it; point the feed at it with
``DHAN_WS_URL=ws://127.0.0.1:8766``, ``DHAN_DEPTH_WS_URL=ws://127.0.0.1:8766/twentydepth``,
``DHAN_API_URL=http://127.0.0.1:8766`` and
``DHAN_SCRIP_MASTER_URL=http://127.0.0.1:8766/api-data/api-scrip-master.csv``. Test credentials:
client id ``1000000001``, access token ``test-dhan-access-token``. The official SDK connects to it
too (``MarketFeed.market_feed_wss = "ws://127.0.0.1:8766"``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.app import market_app
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


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`DhanEmulator` (keyword
    ``settings`` such as ``max_connections`` or ``max_instruments`` go to it)."""
    emulator = DhanEmulator(options, **settings)
    app = market_app(emulator, title="DhanHQ emulator (marketpulse)",
                     routers=(feed.router, rest.router))  # fmt: skip
    app.state.server_options = {
        "ws_ping_interval": emulator.ping_interval, "ws_ping_timeout": emulator.ping_timeout,
    }  # fmt: skip
    return app

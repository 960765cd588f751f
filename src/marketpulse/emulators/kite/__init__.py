"""A Zerodha Kite Connect emulator: the ticker WebSocket and the REST API on one port.

``marketpulse emulate kite --port 8765`` serves it; point the feed at it with
``KITE_WS_URL=ws://127.0.0.1:8765`` and ``KITE_API_URL=http://127.0.0.1:8765``. The official
SDK connects to it too (``KiteTicker(..., root="ws://127.0.0.1:8765")``, ``KiteConnect(...,
root="http://127.0.0.1:8765")``). Test credentials: api_key ``test_api_key``, api_secret
``test_api_secret``; any fresh request_token logs in and yields ``test_access_token``.
``docs/brokers/kite.md`` describes the behaviour and the choices made where Kite documents none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.app import market_app
from marketpulse.emulators.kite import rest, ticker
from marketpulse.emulators.kite.core import (
    TEST_ACCESS_TOKEN,
    TEST_API_KEY,
    TEST_API_SECRET,
    TEST_PUBLIC_TOKEN,
    TEST_USER_ID,
    ConnectionLog,
    EmulatedConnection,
    KiteEmulator,
)
from marketpulse.emulators.options import EmulatorOptions

__all__ = [
    "TEST_ACCESS_TOKEN",
    "TEST_API_KEY",
    "TEST_API_SECRET",
    "TEST_PUBLIC_TOKEN",
    "TEST_USER_ID",
    "ConnectionLog",
    "EmulatedConnection",
    "KiteEmulator",
    "build_app",
]


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`KiteEmulator`.

    Keyword ``settings`` go to :class:`KiteEmulator` (``heartbeat_interval``,
    ``max_tokens_per_connection``, ``max_connections_per_key``, ``snapshots``), so tests can
    shrink limits or script every tick (``ticks_per_second=0`` plus ``emulator.push``).
    """
    emulator = KiteEmulator(options, **settings)
    return market_app(emulator, title="Kite Connect emulator (marketpulse)",
                      routers=(ticker.router, rest.router))  # fmt: skip

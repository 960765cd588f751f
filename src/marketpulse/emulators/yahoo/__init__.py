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

from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.app import market_app
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
    return market_app(emulator, title="Yahoo Finance emulator (marketpulse)",
                      routers=(stream.router, chart.router))  # fmt: skip

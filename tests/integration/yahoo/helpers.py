"""Shared pieces of the Yahoo tests: a running emulator and clients pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from marketpulse.config import Settings
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.emulators.yahoo import YahooEmulator, build_app
from marketpulse.feeds.base import ReconnectPolicy
from marketpulse.feeds.yahoo.client import YahooAdapter
from marketpulse.feeds.yahoo.rest import YahooRestClient, forget_crumbs
from marketpulse.httpserver import serving

# The connection pings every 0.2 s in tests, so a second without any frame is a dead socket.
FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=1.0, stall_timeout=30.0)


class RunningEmulator:
    def __init__(self, emulator: YahooEmulator, port: int) -> None:
        self.emulator = emulator
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/?version=2"
        self.legacy_ws_url = f"ws://127.0.0.1:{port}/"
        self.chart_url = f"{self.base}/v8/finance/chart"
        self.cookie_url = f"{self.base}/"
        self.crumb_url = f"{self.base}/v1/test/getcrumb"

    def adapter(self, **options: Any) -> YahooAdapter:
        options.setdefault("ping_interval", 0.2)
        options.setdefault("resubscribe_interval", 0.0)
        return YahooAdapter(options.pop("ws_url", self.ws_url), **options)

    def rest(self, **options: Any) -> YahooRestClient:
        options.setdefault("cookie_url", self.cookie_url)
        options.setdefault("crumb_url", self.crumb_url)
        options.setdefault("rate", 50.0)
        return YahooRestClient(self.chart_url, **options)

    def configure(self, settings: Settings, subscribe: list[str] | None = None) -> Settings:
        return settings.model_copy(
            update={
                "feeds": ["yahoo"], "subscribe": subscribe or [], "subscribe_mode": "quote",
                "yahoo_ws_url": self.ws_url, "yahoo_chart_url": self.chart_url,
                "yahoo_cookie_url": self.cookie_url, "yahoo_crumb_url": self.crumb_url,
                "yahoo_rate_limit_per_second": 50.0,
            }
        )  # fmt: skip


@contextlib.asynccontextmanager
async def yahoo_emulator(
    rate: float = 0.0,
    *,
    drop_every: float | None = None,
    silence_after: float | None = None,
    **settings: Any,
) -> AsyncIterator[RunningEmulator]:
    """The emulator on a free loopback port; ``rate=0`` streams only what a test pushes."""
    options = EmulatorOptions(ticks_per_second=rate, faults=Faults(drop_every, silence_after))
    app = build_app(options, **settings)
    forget_crumbs()  # a fresh emulator may reuse an earlier one's port
    async with serving(app) as port:
        yield RunningEmulator(app.state.emulator, port)

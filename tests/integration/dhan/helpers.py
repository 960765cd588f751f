"""Shared pieces of the Dhan tests: a running emulator and an adapter pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from marketpulse.emulators.dhan import TEST_ACCESS_TOKEN, TEST_CLIENT_ID, DhanEmulator, build_app
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.feeds.base import ReconnectPolicy
from marketpulse.feeds.dhan.client import DhanAdapter
from marketpulse.httpserver import serving

SESSION_ENV = {"DHAN_CLIENT_ID": TEST_CLIENT_ID, "DHAN_ACCESS_TOKEN": TEST_ACCESS_TOKEN}
FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=2.0, stall_timeout=30.0)


class RunningEmulator:
    def __init__(self, emulator: DhanEmulator, port: int) -> None:
        self.emulator = emulator
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.depth_url = f"ws://127.0.0.1:{port}/twentydepth"
        self.api_url = f"http://127.0.0.1:{port}"
        self.master_url = f"{self.api_url}/api-data/api-scrip-master.csv"

    def key(self, symbol: str) -> str:
        return next(i.key for i in self.emulator.listings if i.spec.symbol == symbol)

    def adapter(self, **options: Any) -> DhanAdapter:
        options.setdefault("env", SESSION_ENV)
        options.setdefault("ping_interval", 0.2)
        options.setdefault("depth_ws_url", self.depth_url)
        return DhanAdapter(self.ws_url, options.pop("home", Path("/nonexistent")), **options)


@contextlib.asynccontextmanager
async def dhan_emulator(
    rate: float = 0.0,
    *,
    drop_every: float | None = None,
    silence_after: float | None = None,
    expire_token_after: float | None = None,
    **settings: Any,
) -> AsyncIterator[RunningEmulator]:
    options = EmulatorOptions(
        ticks_per_second=rate, faults=Faults(drop_every, silence_after, expire_token_after)
    )
    app = build_app(options, **settings)
    async with serving(app) as port:
        yield RunningEmulator(app.state.emulator, port)

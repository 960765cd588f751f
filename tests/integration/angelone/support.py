"""Helpers for the Angel One tests: the emulator on loopback, an adapter pointed at it.

The emulator is the real app (``marketpulse.emulators.angelone.build_app``) served by uvicorn on
a free port; the adapter reads the emulator's fixed test session from a private credentials
store, exactly as the feed reads a logged-in session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketpulse.credentials import CredentialStore
from marketpulse.emulators.angelone import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_FEED_TOKEN,
    TEST_JWT,
    AngelOneEmulator,
    build_app,
)
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.feeds.angelone.client import AngelOneAdapter
from marketpulse.httpserver import serving
from marketpulse.model import Tick

SESSION_ENV = {
    "ANGELONE_API_KEY": TEST_API_KEY,
    "ANGELONE_CLIENT_CODE": TEST_CLIENT_CODE,
    "ANGELONE_JWT_TOKEN": TEST_JWT,
    "ANGELONE_FEED_TOKEN": TEST_FEED_TOKEN,
}


@dataclass
class Running:
    emulator: AngelOneEmulator
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/smart-stream"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def master_url(self) -> str:
        return f"{self.api_url}/OpenAPI_File/files/OpenAPIScripMaster.json"

    def token(self, symbol: str) -> str:
        return self.emulator.universe.token_of(symbol)


@contextlib.asynccontextmanager
async def emulator(
    rate: float = 0.0,
    *,
    drop_every: float | None = None,
    silence_after: float | None = None,
    expire_token_after: float | None = None,
    **limits: Any,
) -> AsyncIterator[Running]:
    """``async with emulator(...) as running:`` — rate 0 streams only pushed ticks."""
    options = EmulatorOptions(
        ticks_per_second=rate, faults=Faults(drop_every, silence_after, expire_token_after)
    )
    app = build_app(options, **limits)
    async with serving(app) as port:
        yield Running(app.state.emulator, port)


def session_store(tmp_path: Path) -> CredentialStore:
    """A credentials store that yields the emulator's fixed session (environment overrides)."""
    return CredentialStore(tmp_path / "credentials.json", env=SESSION_ENV)


def make_adapter(running: Running, tmp_path: Path, **overrides: Any) -> AngelOneAdapter:
    overrides.setdefault("rate_limited_pause", 0.05)
    return AngelOneAdapter(running.ws_url, session_store(tmp_path), **overrides)


class Collector:
    """A supervisor sink that keeps every tick."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []

    async def __call__(self, batch: list[Tick]) -> None:
        self.ticks.extend(batch)


async def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it is true (a deadline, not a timing assertion)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)

"""Shared pieces of the Fyers tests: a running emulator, saved credentials, polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from marketpulse.credentials import CredentialStore
from marketpulse.emulators.fyers import TEST_APP_ID, TEST_HSM_KEY, FyersEmulator, build_app
from marketpulse.emulators.fyers.core import make_token
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.feeds.base import ReconnectPolicy
from marketpulse.feeds.fyers.client import FyersAdapter
from marketpulse.httpserver import serving
from marketpulse.model import Tick

FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=2.0, stall_timeout=30.0)


def access_token(expires_in: float = 86400.0, hsm_key: str = TEST_HSM_KEY) -> str:
    return make_token(hsm_key, time.time() + expires_in)


def session_env(token: str | None = None) -> dict[str, str]:
    return {"FYERS_APP_ID": TEST_APP_ID, "FYERS_ACCESS_TOKEN": token or access_token()}


class RunningEmulator:
    def __init__(self, emulator: FyersEmulator, port: int) -> None:
        self.emulator = emulator
        self.port = port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/hsm/v1-5/prod"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def adapter(self, **options: Any) -> FyersAdapter:
        """A feed adapter for this emulator with a fresh test session in its (private) env."""
        options.setdefault("env", session_env())
        options.setdefault("ping_interval", 0.2)
        home = options.pop("home", Path("/nonexistent"))
        return FyersAdapter(self.ws_url, self.api_url, home, public_url=self.api_url, **options)


@contextlib.asynccontextmanager
async def fyers_emulator(
    rate: float = 0.0,
    *,
    drop_every: float | None = None,
    silence_after: float | None = None,
    expire_token_after: float | None = None,
    **settings: Any,
) -> AsyncIterator[RunningEmulator]:
    """The emulator on a free loopback port; ``rate=0`` streams only what a test pushes."""
    options = EmulatorOptions(
        ticks_per_second=rate, faults=Faults(drop_every, silence_after, expire_token_after)
    )
    app = build_app(options, **settings)
    async with serving(app) as port:
        yield RunningEmulator(app.state.emulator, port)


def save_session(home: Path, token: str | None = None, expires_at: float | None = None) -> None:
    CredentialStore.in_home(home).save(
        "fyers", {"app_id": TEST_APP_ID, "access_token": token or access_token()}, expires_at
    )


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []

    async def __call__(self, batch: list[Tick]) -> None:
        self.ticks.extend(batch)


async def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

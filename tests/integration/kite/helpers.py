"""Shared pieces of the Kite tests: a running emulator, saved credentials, polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.kite import (
    TEST_ACCESS_TOKEN,
    TEST_API_KEY,
    KiteEmulator,
    build_app,
)
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.feeds.base import ReconnectPolicy
from marketpulse.feeds.kite.client import KiteAdapter
from marketpulse.feeds.kite.credentials import KiteCredentials
from marketpulse.httpserver import serving
from marketpulse.model import Tick

CREDENTIALS = KiteCredentials(TEST_API_KEY, TEST_ACCESS_TOKEN)
SESSION_ENV = {"KITE_API_KEY": TEST_API_KEY, "KITE_ACCESS_TOKEN": TEST_ACCESS_TOKEN}

# The emulator heartbeats every 0.1 s in tests, so a second of silence is a dead socket.
FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=1.0, stall_timeout=30.0)


class RunningEmulator:
    def __init__(self, emulator: KiteEmulator, port: int) -> None:
        self.emulator = emulator
        self.port = port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, key: str) -> int:
        """The Kite instrument token of ``EXCHANGE:TRADINGSYMBOL``."""
        return self.emulator.listing.by_key[key].token

    def adapter(self, **options: Any) -> KiteAdapter:
        """A feed adapter for this emulator with the test session in its (private) env."""
        options.setdefault("env", SESSION_ENV)
        return KiteAdapter(self.ws_url, options.pop("home", Path("/nonexistent")), **options)


@contextlib.asynccontextmanager
async def kite_emulator(
    rate: float = 0.0,
    *,
    drop_every: float | None = None,
    silence_after: float | None = None,
    expire_token_after: float | None = None,
    extra_instruments: int = 0,
    **settings: Any,
) -> AsyncIterator[RunningEmulator]:
    """The emulator on a free loopback port; ``rate=0`` streams only what a test pushes."""
    options = EmulatorOptions(
        ticks_per_second=rate,
        extra_instruments=extra_instruments,
        faults=Faults(drop_every, silence_after, expire_token_after),
    )
    settings.setdefault("heartbeat_interval", 0.1)
    app = build_app(options, **settings)
    async with serving(app) as port:
        yield RunningEmulator(app.state.emulator, port)


def save_session(home: Path, expires_at: float | None = None) -> None:
    CredentialStore.in_home(home).save(
        "kite", {"api_key": TEST_API_KEY, "access_token": TEST_ACCESS_TOKEN}, expires_at
    )


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []

    async def __call__(self, batch: list[Tick]) -> None:
        self.ticks.extend(batch)


async def invoke_cli(
    args: list[str], env: dict[str, str | None], input: str | None = None
) -> Result:
    """Run the real CLI in a thread (it blocks; emulators run on this event loop).

    The CLI points the root logger at the runner's captured stderr, which closes when the
    command ends; the root handlers are restored so later log lines have somewhere to go.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        runner = CliRunner()
        return await asyncio.to_thread(lambda: runner.invoke(app, args, input=input, env=env))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

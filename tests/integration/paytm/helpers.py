"""Shared pieces of the Paytm tests: a running emulator and an adapter pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from marketpulse.credentials import CredentialStore
from marketpulse.emulators.options import EmulatorOptions, Faults
from marketpulse.emulators.paytm import TEST_API_KEY, PaytmEmulator, build_app
from marketpulse.feeds.base import ReconnectPolicy
from marketpulse.feeds.paytm.client import PaytmAdapter
from marketpulse.httpserver import serving

FAST = ReconnectPolicy(min_delay=0.02, max_delay=0.1, heartbeat_timeout=2.0, stall_timeout=30.0)


class RunningEmulator:
    def __init__(self, emulator: PaytmEmulator, port: int) -> None:
        self.emulator = emulator
        self.port = port
        self.api_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/broadcast/user/v1/data"
        self.login_url = f"{self.api_url}/merchant-login"
        self.master_url = f"{self.api_url}/data/v1/scrips/security_master.csv"

    @property
    def env(self) -> dict[str, str]:
        return {"PAYTM_PUBLIC_ACCESS_TOKEN": self.emulator.tokens.public}

    def key(self, symbol: str) -> str:
        return self.emulator.key(symbol)

    def adapter(self, **options: Any) -> PaytmAdapter:
        options.setdefault("env", self.env)
        options.setdefault("ping_interval", 0.2)
        return PaytmAdapter(self.ws_url, options.pop("home", Path("/nonexistent")), **options)

    def save_tokens(self, home: Path) -> None:
        tokens = self.emulator.tokens
        CredentialStore.in_home(home).save(
            "paytm",
            {"api_key": TEST_API_KEY, "access_token": tokens.access,
             "public_access_token": tokens.public, "read_access_token": tokens.read},
            None,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def paytm_emulator(
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

"""An Angel One SmartAPI emulator: the smart-stream WebSocket and the REST API on one port.

``marketpulse emulate angelone --port 8766`` runs it; point the feed at it with
``ANGELONE_WS_URL=ws://127.0.0.1:8766/smart-stream``, ``ANGELONE_API_URL=http://127.0.0.1:8766``
and ``ANGELONE_SCRIP_MASTER_URL=http://127.0.0.1:8766/OpenAPI_File/files/OpenAPIScripMaster.json``.
The test account (:mod:`.accounts`) and fault options are documented in
``docs/brokers/angelone.md``. Tests reach the running state as ``app.state.emulator``
(:class:`AngelOneEmulator`): ``push(ticks)`` sends exact ticks, ``hub.history`` shows every
socket's subscription requests, ``rest.faults`` scripts REST refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import msgspec
from fastapi import FastAPI, WebSocket

from marketpulse.emulators.angelone.accounts import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_FEED_TOKEN,
    TEST_JWT,
    TEST_PIN,
    TEST_REFRESH_TOKEN,
    TEST_TOTP_SECRET,
    Accounts,
)
from marketpulse.emulators.angelone.master import master_rows
from marketpulse.emulators.angelone.rest import SCRIP_MASTER_PATH, RestApi, RestLimits, router
from marketpulse.emulators.angelone.stream import StreamHub, StreamLimits
from marketpulse.emulators.denials import quiet_denials
from marketpulse.emulators.options import EmulatorOptions, FaultClock
from marketpulse.feeds.simulator.market import SimulatedMarket
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.feeds.simulator.universe import Universe, default_universe
from marketpulse.model import Tick

__all__ = [
    "SCRIP_MASTER_PATH",
    "TEST_API_KEY",
    "TEST_CLIENT_CODE",
    "TEST_FEED_TOKEN",
    "TEST_JWT",
    "TEST_PIN",
    "TEST_REFRESH_TOKEN",
    "TEST_TOTP_SECRET",
    "AngelOneEmulator",
    "RestLimits",
    "StreamLimits",
    "build_app",
]


class AngelOneEmulator:
    """Everything behind one emulator app: universe, market, accounts, stream hub, REST state."""

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        stream_limits: StreamLimits | None = None,
        rest_limits: RestLimits | None = None,
        universe: Universe | None = None,
    ) -> None:
        self.options = options
        self.universe = universe or default_universe(
            ist_date(options.clock()), options.extra_instruments
        )
        self.market = SimulatedMarket(self.universe, options.seed)
        self.faults = FaultClock(options.faults)
        self.accounts = Accounts(self.faults)
        self.hub = StreamHub(options, self.market, self.accounts, self.faults,
                             stream_limits or StreamLimits())  # fmt: skip
        rows = master_rows(self.universe)
        self.rest = RestApi(options, self.accounts, self.hub, self.universe,
                            msgspec.json.encode(rows), rest_limits or RestLimits())  # fmt: skip

    def push(self, ticks: Iterable[Tick]) -> int:
        """Send exact ticks to their subscribers (see :meth:`StreamHub.push`)."""
        return self.hub.push(ticks)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self.hub.run_market(), name="angelone-emulator:market"),
            asyncio.create_task(self.hub.run_faults(), name="angelone-emulator:faults"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def build_app(
    options: EmulatorOptions,
    *,
    stream_limits: StreamLimits | None = None,
    rest_limits: RestLimits | None = None,
    universe: Universe | None = None,
) -> FastAPI:
    """The emulator as an ASGI app; its state is ``app.state.emulator``."""
    quiet_denials()
    emulator = AngelOneEmulator(
        options, stream_limits=stream_limits, rest_limits=rest_limits, universe=universe
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with emulator.running():
            yield

    app = FastAPI(title="Angel One SmartAPI emulator (marketpulse)", lifespan=lifespan)
    app.state.emulator = emulator
    app.include_router(router(emulator.rest))

    async def stream(ws: WebSocket) -> None:
        await emulator.hub.serve(ws)

    app.add_api_websocket_route("/smart-stream", stream)
    app.add_api_websocket_route("/", stream)  # SDK users who override ROOT_URI with a bare host
    return app

"""A Fyers API v3 emulator: the HSM data socket and the REST API on one port.

``marketpulse emulate fyers --port 8766`` serves it; point the feed at it with
``FYERS_WS_URL=ws://127.0.0.1:8766/hsm/v1-5/prod``, ``FYERS_API_URL=http://127.0.0.1:8766`` and
``FYERS_PUBLIC_URL=http://127.0.0.1:8766``. Test app: id ``TESTAPP001-100``, secret
``test_secret_key``; ``/api/v3/generate-authcode`` redirects at once with an auth code, which
``/api/v3/validate-authcode`` exchanges for an access token carrying the emulator's hsm_key.
``docs/brokers/fyers.md`` describes the behaviour and the choices made where Fyers documents none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.app import market_app
from marketpulse.emulators.fyers import rest, stream
from marketpulse.emulators.fyers.core import (
    TEST_APP_ID,
    TEST_HSM_KEY,
    TEST_SECRET,
    EmulatedConnection,
    FyersEmulator,
    TopicPublisher,
    make_token,
)
from marketpulse.emulators.options import EmulatorOptions

__all__ = [
    "TEST_APP_ID",
    "TEST_HSM_KEY",
    "TEST_SECRET",
    "EmulatedConnection",
    "FyersEmulator",
    "TopicPublisher",
    "build_app",
    "make_token",
]


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`FyersEmulator`.

    Keyword ``settings`` go to :class:`FyersEmulator` (``ack_count``, ``symbol_limit``,
    ``hsm_key``, ``token_lifetime``), so tests can shrink limits or script every tick
    (``ticks_per_second=0`` plus ``emulator.push``).
    """
    emulator = FyersEmulator(options, **settings)
    return market_app(emulator, title="Fyers API v3 emulator (marketpulse)",
                      routers=(stream.router, rest.router))  # fmt: skip

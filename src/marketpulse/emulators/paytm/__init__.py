"""A Paytm Money emulator: broadcast socket, login redirect, gettoken, live price and security
master on one port.

``marketpulse emulate paytm --port 8767`` serves it; point the feed at it with
``PAYTM_WS_URL=ws://127.0.0.1:8767/broadcast/user/v1/data``, ``PAYTM_API_URL=http://127.0.0.1:8767``,
``PAYTM_LOGIN_URL=http://127.0.0.1:8767/merchant-login`` and
``PAYTM_SECURITY_MASTER_URL=http://127.0.0.1:8767/data/v1/scrips/security_master.csv``, then
``marketpulse login paytm`` with api key ``test-paytm-api-key`` / secret
``test-paytm-api-secret`` (open the login URL: it redirects with a request token).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from marketpulse.emulators.app import market_app
from marketpulse.emulators.denials import quiet_denials
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.paytm import feed, rest
from marketpulse.emulators.paytm.core import (
    TEST_API_KEY,
    TEST_API_SECRET,
    ConnectionLog,
    EmulatedConnection,
    PaytmEmulator,
)

__all__ = ["TEST_API_KEY", "TEST_API_SECRET", "ConnectionLog", "EmulatedConnection",
           "PaytmEmulator", "build_app"]  # fmt: skip


def build_app(options: EmulatorOptions, **settings: Any) -> FastAPI:
    """The emulator app; ``app.state.emulator`` is its :class:`PaytmEmulator` (keyword
    ``settings`` such as ``max_instruments`` or ``max_connections`` go to it)."""
    emulator = PaytmEmulator(options, **settings)
    quiet_denials()
    return market_app(emulator, title="Paytm Money emulator (marketpulse)",
                      routers=(feed.router, rest.router))  # fmt: skip

"""Broker-side servers speaking each broker's protocol, driven by the simulator.

Each emulator module exposes ``build_app(options: EmulatorOptions) -> FastAPI`` serving the
broker's WebSocket and REST endpoints on one port; ``marketpulse emulate <broker>`` runs it.
"""

from __future__ import annotations

EMULATORS: dict[str, str] = {
    "kite": "marketpulse.emulators.kite",
    "angelone": "marketpulse.emulators.angelone",
    "fyers": "marketpulse.emulators.fyers",
    "dhan": "marketpulse.emulators.dhan",
    "paytm": "marketpulse.emulators.paytm",
    "yahoo": "marketpulse.emulators.yahoo",
}

"""The load generator process: the Kite emulator at a fixed rate over N instruments.

``python -m marketpulse.loadtest.generator --rate 10000 --instruments 1000`` serves the real
Kite emulator (ticker WebSocket + REST, so ``instruments sync`` and the feed work unchanged)
with its market paced over exactly the first N instruments, starting *paused*: the runner opens
the measuring window with ``POST /loadtest/start`` once the feed has subscribed, and closes it
with ``POST /loadtest/pause``. ``GET /loadtest/stats`` counts what actually went out on the
sockets — the "published" side of the loss accounting. It prints ``READY <port>`` when serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from fastapi import FastAPI

from marketpulse import event_loop
from marketpulse.emulators.kite import KiteEmulator, build_app
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.httpserver import serving
from marketpulse.loadtest.scenario import BASE_INSTRUMENTS


def generator_stats(emulator: KiteEmulator) -> dict[str, Any]:
    """Ticks sent so far (closed connections included) and the live subscriptions."""
    live = emulator.connections
    return {
        "sent": sum(log.ticks_sent for log in emulator.history),
        "frames": sum(log.frames_sent for log in emulator.history),
        "frames_dropped": sum(log.frames_dropped for log in emulator.history),
        "connections": len(live),
        "connections_opened": len(emulator.history),
        "closed": [log.closed for log in emulator.history if log.closed][-5:],
        "subscribed": sum(len(c.modes) for c in live),
        "full": sum(1 for c in live for mode in c.modes.values() if mode == "full"),
        "paused": emulator.options.paused,
    }


def build_generator(
    rate: float, instruments: int, seed: int = 42, slice_ms: float = 50.0
) -> FastAPI:
    """The Kite emulator app, paused, paced over ``instruments``, plus the control routes.
    Every ``slice_ms`` each connection gets one frame of the ticks due in that slice."""
    options = EmulatorOptions(
        seed=seed, ticks_per_second=rate, always_open=True, paused=True,
        extra_instruments=max(0, instruments - BASE_INSTRUMENTS), instruments=instruments,
    )  # fmt: skip
    # No subscribe snapshots: every tick sent is a paced one, inside the window.
    app = build_app(options, snapshots=False, slice_seconds=slice_ms / 1000)
    emulator: KiteEmulator = app.state.emulator

    async def stats() -> dict[str, Any]:
        return generator_stats(emulator)

    async def start() -> dict[str, Any]:
        options.paused = False
        return generator_stats(emulator)

    async def pause() -> dict[str, Any]:
        options.paused = True
        return generator_stats(emulator)

    app.add_api_route("/loadtest/stats", stats, methods=["GET"])
    app.add_api_route("/loadtest/start", start, methods=["POST"])
    app.add_api_route("/loadtest/pause", pause, methods=["POST"])
    return app


async def _serve(rate: float, instruments: int, seed: int, slice_ms: float) -> None:
    app = build_generator(rate, instruments, seed, slice_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with serving(app) as port:
        print(f"READY {port}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m marketpulse.loadtest.generator")
    parser.add_argument("--rate", type=float, required=True, help="ticks per second in total")
    parser.add_argument("--instruments", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--slice-ms", type=float, default=50.0, help="one frame per slice")
    args = parser.parse_args(argv)
    try:
        # The same loop as the service and the clients (uvloop when installed): the generator
        # shares the two cores with what it measures, so its per-frame cost matters too.
        event_loop.run(_serve(args.rate, args.instruments, args.seed, args.slice_ms))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

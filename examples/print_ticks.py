"""Print live ticks of a few symbols.

    make demo                                   # in another terminal; it prints its Redis URL
    .venv/bin/python examples/print_ticks.py redis://127.0.0.1:PORT/0 RELIANCE.NSE INFY.NSE

Stops after --seconds (default: run until Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from marketpulse.client import MarketDataTick, create_redis_consumer


def show(tick: MarketDataTick) -> None:
    change = f"{tick.change_percent:+.2f}%" if tick.change_percent is not None else ""
    print(f"{tick.timestamp:%H:%M:%S.%f} {tick.symbol:<22} {tick.ltp:>12,.2f} {change}", flush=True)


async def main(url: str, symbols: list[str], seconds: float | None, prefix: str) -> None:
    consumer = create_redis_consumer(url, stream_prefix=prefix)
    consumer.add_message_handler(show)
    await consumer.connect()
    if symbols:
        await consumer.subscribe_to_multiple_symbols(symbols)
    else:
        await consumer.subscribe_to_all_symbols()
    run = asyncio.create_task(consumer.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(run), seconds)
    await consumer.disconnect()
    await run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="Redis URL that marketpulse writes to")
    parser.add_argument("symbols", nargs="*", help="symbols (default: every symbol)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--stream-prefix", default="market_data_stream",
                        help="SYMBOL_STREAM_PREFIX of the service")  # fmt: skip
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.url, args.symbols, args.seconds, args.stream_prefix))

"""A strategy worker in a consumer group: run several copies and they share the symbols' ticks,
each tick handled (and acknowledged) once; a crashed copy's ticks are taken over by the others.

    .venv/bin/python examples/moving_average_group.py redis://127.0.0.1:PORT/0 --name w1
    .venv/bin/python examples/moving_average_group.py redis://127.0.0.1:PORT/0 --name w2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import defaultdict, deque

from marketpulse.client import MarketDataTick, create_redis_consumer

WINDOW = 20
prices: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))


async def on_tick(tick: MarketDataTick) -> None:
    window = prices[tick.symbol]
    window.append(tick.ltp)
    if len(window) == WINDOW:
        average = sum(window) / WINDOW
        side = "above" if tick.ltp > average else "below"
        print(f"{tick.symbol:<22} {tick.ltp:>10.2f} {side} its {WINDOW}-tick average {average:.2f}",
              flush=True)  # fmt: skip


async def main(url: str, name: str, seconds: float | None, prefix: str) -> None:
    consumer = create_redis_consumer(
        url, group="moving-average", consumer_name=name, stream_prefix=prefix
    )
    consumer.add_message_handler(on_tick)
    await consumer.connect()
    await consumer.subscribe_to_all_symbols()
    run = asyncio.create_task(consumer.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(run), seconds)
    await consumer.disconnect()
    await run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--name", default="worker-1", help="this worker's consumer name")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--stream-prefix", default="market_data_stream",
                        help="SYMBOL_STREAM_PREFIX of the service")  # fmt: skip
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.url, args.name, args.seconds, args.stream_prefix))

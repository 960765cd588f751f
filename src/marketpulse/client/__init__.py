"""Consume marketpulse's live ticks from Redis in your own program.

```python
from marketpulse.client import create_redis_consumer

consumer = create_redis_consumer("redis://127.0.0.1:6379/0")
consumer.add_message_handler(lambda tick: print(tick.symbol, tick.ltp))
await consumer.connect()
await consumer.subscribe_to_multiple_symbols(["RELIANCE.NSE", "INFY.NSE"])
await consumer.run()          # until consumer.disconnect()
```

Importable on its own: it needs only ``redis`` and ``msgspec`` (and the canonical model).
"""

from marketpulse.client.consumer import RedisMarketDataConsumer, create_redis_consumer
from marketpulse.client.tick import MarketDataTick

__all__ = ["MarketDataTick", "RedisMarketDataConsumer", "create_redis_consumer"]

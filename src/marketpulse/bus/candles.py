"""Live candle updates on Redis, in the firehose entry format so the WebSocket hub routes them.

The store role appends one entry per changed candle to ``{prefix}:candles``: ``k`` is the
WebSocket channel (``candles:1m:RELIANCE.NSE``) and ``t`` the candle JSON. Publishing is best
effort after the commit: the candle is already in PostgreSQL, so a Redis hiccup only delays
the live view, never the stored history.
"""

from __future__ import annotations

from typing import Final

import msgspec
import redis.asyncio as aioredis

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD
from marketpulse.config import Settings
from marketpulse.model import Candle

CHANNEL_PREFIX: Final = "candles:"

_encoder = msgspec.json.Encoder()


def candle_channel(interval: str, symbol: str) -> str:
    return f"{CHANNEL_PREFIX}{interval}:{symbol}"


def parse_candle_channel(channel: str) -> tuple[str, str] | None:
    """``candles:{interval}:{SYMBOL}`` → (interval, symbol); ``None`` for a tick channel."""
    if not channel.startswith(CHANNEL_PREFIX):
        return None
    interval, _, symbol = channel[len(CHANNEL_PREFIX) :].partition(":")
    return interval, symbol


async def publish_candles(redis: aioredis.Redis, settings: Settings, candles: list[Candle]) -> None:
    if not candles:
        return
    key = settings.candle_stream_key
    maxlen = settings.candle_stream_maxlen
    pipe = redis.pipeline(transaction=False)
    for candle in candles:
        pipe.xadd(
            key,
            {
                KEY_FIELD: candle_channel(candle.interval, candle.symbol),
                TICK_FIELD: _encoder.encode(candle),
            },
            maxlen=maxlen,
            approximate=True,
        )
    await pipe.execute()

"""Live candle updates on Redis, in the firehose entry format so the WebSocket hub routes them.

The store role appends one entry per changed candle series to ``{prefix}:candles``: ``k`` is the
WebSocket channel (``candles:1m:RELIANCE.NSE``) and ``t`` the candle JSON. A flush publishes only
the newest candle of each channel, and all of them as one pipelined raw-RESP write
(:mod:`marketpulse.bus.resp`) — a redis-py pipeline of one XADD per candle cost the store role
more CPU than the database work. Publishing is best effort after the commit: the candle is
already in PostgreSQL, so a Redis hiccup only delays the live view, never the stored history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD
from marketpulse.bus.resp import RespConnection, bulk, command_prefix
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


def newest_candles(candles: Iterable[Candle]) -> list[Candle]:
    """The newest candle per channel (latest start; a later update of the same start wins):
    a live chart only moves its last bar, so older updates of a flush are not sent."""
    newest: dict[tuple[str, str], Candle] = {}
    for candle in candles:
        key = (candle.interval, candle.symbol)
        seen = newest.get(key)
        if seen is None or candle.start >= seen.start:
            newest[key] = candle
    return list(newest.values())


def pack_candle_updates(prefix: bytes, candles: Iterable[Candle]) -> tuple[bytes, int]:
    """One buffer of XADD commands (``prefix`` holds everything but the channel and the JSON)
    for the newest candle of each channel; returns it and the number of commands."""
    tick_field = bulk(TICK_FIELD)
    parts: list[bytes] = []
    count = 0
    for candle in newest_candles(candles):
        channel = candle_channel(candle.interval, candle.symbol).encode()
        parts += (prefix, bulk(channel), tick_field, bulk(_encoder.encode(candle)))
        count += 1
    return b"".join(parts), count


class CandlePublisher:
    """The store role's writer of live candle updates: one raw-RESP connection of its own and
    one round trip per flush."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url, "REDIS_URL must be resolved before publishing"
        self._connection = RespConnection(settings.redis_url, cluster=settings.cluster_mode)
        maxlen = str(settings.candle_stream_maxlen).encode()
        self._prefix = command_prefix(
            10, b"XADD", settings.candle_stream_key.encode(), b"MAXLEN", b"~", maxlen, b"*",
            KEY_FIELD,
        )  # fmt: skip

    async def publish(self, candles: Iterable[Candle]) -> int:
        """Append the newest update of each channel to the candle stream; returns how many
        entries were sent. Raises ``redis`` connection errors / ``OSError`` on failure."""
        payload, count = pack_candle_updates(self._prefix, candles)
        if count:
            await self._connection.execute(payload, count)
        return count

    async def close(self) -> None:
        await self._connection.close()

"""The set of instruments the running feeds stream, shared through Redis.

Ingest writes one entry per subscribed instrument into the ``{prefix}:subscriptions`` hash
(canonical symbol → source, token, exchange, mode), so an API process anywhere can list what is
tracked without asking the ingest process.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from marketpulse.config import Settings


class TrackedSymbol(msgspec.Struct, frozen=True, omit_defaults=True):
    """One instrument as a provider knows it: the canonical ``symbol`` and the provider's
    ``token``, ``exchange`` and (when the instrument master has it) ``broker_symbol``, the
    name the provider's REST API wants (``NSE:NIFTY 50`` on Kite)."""

    symbol: str
    source: str
    token: str
    exchange: str
    mode: str
    broker_symbol: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TrackedSymbol)


async def write_subscriptions(
    redis: aioredis.Redis, settings: Settings, tracked: Iterable[TrackedSymbol]
) -> None:
    mapping: dict[FieldT, EncodableT] = {t.symbol: _encoder.encode(t) for t in tracked}
    if mapping:
        await redis.hset(settings.subscriptions_key, mapping=mapping)


async def remove_subscriptions(
    redis: aioredis.Redis, settings: Settings, symbols: Iterable[str]
) -> None:
    names = list(symbols)
    if names:
        await redis.hdel(settings.subscriptions_key, *names)


async def read_subscriptions(redis: aioredis.Redis, settings: Settings) -> list[TrackedSymbol]:
    raw = await redis.hgetall(settings.subscriptions_key)
    return [_decoder.decode(v) for v in raw.values()]


async def is_tracked(redis: aioredis.Redis, settings: Settings, symbol: str) -> bool:
    return bool(await redis.hexists(settings.subscriptions_key, symbol))

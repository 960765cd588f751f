"""Subscription changes from any API replica to every ingest process, through Redis.

Roles share only Redis and PostgreSQL, so ``POST /subscribe`` on one machine reaches the feeds on
another as an entry of the ``{mp}:control`` stream. Each ingest process reads it from where it
started; the wanted set per feed is also kept in ``{mp}:wanted:{feed}`` (symbol → mode) so a
restarted ingest restores it. The outcome of each command is written to ``{mp}:control:results``
for ``GET /subscribe/{id}``. ``{mp}`` is ``REDIS_KEY_PREFIX`` in braces: the Redis Cluster hash
tag that keeps the three in one slot, so :func:`send_command` stays one MULTI/EXEC.

The same stream carries feed control (``POST /api/ws/stop`` / ``start``): ``stop`` disconnects a
feed and keeps it stopped, ``start`` connects it again with its subscriptions. The durable record
of subscriptions is PostgreSQL's ``subscriptions`` table (:mod:`marketpulse.store.subscriptions`);
the wanted sets here are its fast path.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal, cast

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from marketpulse.bus.connection import ready_for_transactions
from marketpulse.bus.firehose import Entry, stream_entries
from marketpulse.config import Settings

RESULT_TTL_SECONDS = 3600
_FIELD = b"c"


Action = Literal["subscribe", "unsubscribe", "start", "stop"]
FEED_ACTIONS: frozenset[str] = frozenset({"start", "stop"})


class ControlCommand(msgspec.Struct, frozen=True):
    """One change for the ingest processes; ``symbols`` is empty for ``start``/``stop``."""

    action: Action
    symbols: list[str]
    mode: str = "full"
    feed: str | None = None  # None: every feed that can stream the symbols
    id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)
    issued_at: float = msgspec.field(default_factory=time.time)


class ControlResult(msgspec.Struct, omit_defaults=True):
    id: str
    status: Literal["pending", "applied", "failed"]
    feeds: dict[str, str] = msgspec.field(default_factory=dict)  # feed → "ok" or the error
    updated_at: float = msgspec.field(default_factory=time.time)


_command = msgspec.json.Decoder(ControlCommand)
_result = msgspec.json.Decoder(ControlResult)
_encode = msgspec.json.Encoder().encode


def control_key(settings: Settings) -> str:
    return f"{settings.bus_tag}:control"


def wanted_key(settings: Settings, feed: str) -> str:
    return f"{settings.bus_tag}:wanted:{feed}"


def results_key(settings: Settings) -> str:
    return f"{settings.bus_tag}:control:results"


async def send_command(
    redis: aioredis.Redis, settings: Settings, command: ControlCommand, feeds: list[str]
) -> None:
    """Record the wanted set for ``feeds`` and publish the command, in one round trip."""
    await ready_for_transactions(redis)
    pipe = redis.pipeline(transaction=True)
    for feed in feeds:
        if command.action in FEED_ACTIONS or not command.symbols:
            continue
        if command.action == "subscribe":
            mapping: dict[FieldT, EncodableT] = dict.fromkeys(command.symbols, command.mode)
            pipe.hset(wanted_key(settings, feed), mapping=mapping)
        else:
            pipe.hdel(wanted_key(settings, feed), *command.symbols)
    pipe.hset(results_key(settings), command.id, _encode(ControlResult(command.id, "pending")))
    pipe.xadd(control_key(settings), {_FIELD: _encode(command)}, maxlen=10_000, approximate=True)
    await pipe.execute()


async def wanted(redis: aioredis.Redis, settings: Settings, feed: str) -> dict[str, str]:
    raw = cast(dict[bytes, bytes], await redis.hgetall(wanted_key(settings, feed)))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def control_position(redis: aioredis.Redis, settings: Settings) -> str:
    """The id to read commands after: the stream's current end."""
    last = cast(list[Entry], await redis.xrevrange(control_key(settings), count=1))
    return last[0][0].decode() if last else "0-0"


async def read_commands(
    redis: aioredis.Redis, settings: Settings, after: str, block_ms: int = 1000
) -> tuple[str, list[ControlCommand]]:
    reply = await redis.xread({control_key(settings): after}, count=100, block=block_ms)
    commands: list[ControlCommand] = []
    for _, entries in stream_entries(reply):
        for entry_id, fields in entries:
            after = entry_id.decode()
            try:
                commands.append(_command.decode(fields[_FIELD]))
            except (KeyError, msgspec.DecodeError):
                continue  # not ours, or from an incompatible version
    return after, commands


async def record_result(
    redis: aioredis.Redis, settings: Settings, command_id: str, feed: str, outcome: str
) -> None:
    """Merge one feed's outcome into the command's result."""
    key = results_key(settings)
    raw = await redis.hget(key, command_id)
    result = _result.decode(raw) if raw else ControlResult(command_id, "pending")
    result.feeds[feed] = outcome
    result.status = "applied" if all(v == "ok" for v in result.feeds.values()) else "failed"
    result.updated_at = time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.hset(key, command_id, _encode(result))
    pipe.expire(key, RESULT_TTL_SECONDS)
    await pipe.execute()


async def read_result(
    redis: aioredis.Redis, settings: Settings, command_id: str
) -> ControlResult | None:
    raw = await redis.hget(results_key(settings), command_id)
    return _result.decode(raw) if raw else None

"""``RedisMarketDataConsumer``: live ticks from marketpulse's per-symbol Redis streams.

Two ways to read:

* **plain** (default): every consumer sees every tick (XREAD). Positions are concrete stream
  ids from the first moment, so a reconnect after a Redis restart resumes exactly where it
  stopped — nothing that is still in the stream is skipped.
* **consumer group** (``group="name"``): the group shares the work, at least once (XREADGROUP).
  A tick is acknowledged only after every handler returned; a handler that raises leaves it
  pending, and it is retried after ``retry_delay_seconds``, up to ``max_deliveries`` times
  (then it is logged and acknowledged so one poison tick cannot stall the group). Entries a
  dead consumer left pending for ``claim_idle_seconds`` are claimed (XAUTOCLAIM).

Stream keys are ``{stream_prefix}:{SYMBOL}`` with the braces: the symbol is the Redis Cluster
hash tag. Against a cluster (detected, or ``cluster=True``) streams of different symbols live in
different slots, and one XREAD cannot span slots; the consumer then reads every slot's streams in
one pipelined round (without BLOCK, the pipeline goes to each master at once) and waits
``cluster_poll_ms`` when a round brought nothing — so a tick may wait that long longer than on a
single server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from marketpulse.bus.connection import create_redis, is_cluster
from marketpulse.bus.slots import key_slot
from marketpulse.client.tick import MarketDataTick
from marketpulse.model import decode_tick, normalize_symbol

log = logging.getLogger(__name__)

Handler = Callable[[MarketDataTick], Awaitable[None] | None]
Entry = tuple[bytes, dict[bytes, bytes]]
_TICK_FIELD = b"t"
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


class ConsumerError(RuntimeError):
    """A problem the consumer cannot retry its way out of; the message says what to do."""


@dataclass(slots=True)
class ConsumerOptions:
    stream_prefix: str = "market_data_stream"
    group: str | None = None
    consumer_name: str | None = None
    start: str = "$"
    """``$``: only ticks arriving after subscribing; ``0``: everything still in the stream."""
    batch_size: int = 500
    block_ms: int = 1000
    retry_delay_seconds: float = 2.0
    max_deliveries: int = 5
    claim_idle_seconds: float = 60.0
    discover_interval_seconds: float = 5.0
    reconnect_max_seconds: float = 10.0
    cluster: bool | None = None
    """Redis Cluster client: ``None`` asks the server (``INFO cluster``)."""
    cluster_poll_ms: int = 50


def create_redis_consumer(url: str, **options: Any) -> RedisMarketDataConsumer:
    """A consumer for the marketpulse Redis at ``url``; ``options`` are :class:`ConsumerOptions`
    fields (e.g. ``group="strategies"``)."""
    return RedisMarketDataConsumer(url, ConsumerOptions(**options))


class RedisMarketDataConsumer:
    """Reads per-symbol streams and calls every handler with each :class:`MarketDataTick`."""

    def __init__(self, url: str, options: ConsumerOptions | None = None) -> None:
        self.url = url
        self.options = options or ConsumerOptions()
        self.consumer_name = self.options.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self._redis: aioredis.Redis | None = None
        self._handlers: list[Handler] = []
        self._positions: dict[str, str] = {}  # stream key → last id (plain mode)
        self._all = False
        self._last_discovery = 0.0
        self._last_claim = 0.0
        self._stopping = asyncio.Event()
        self.delivered = 0
        self.handler_errors = 0
        self.reconnects = 0

    # ------------------------------------------------------------------ set-up

    async def connect(self) -> None:
        """Open the connection; a wrong URL or a Redis that is down is a clear error."""
        self._redis = create_redis(self.url, cluster=self.options.cluster)
        try:
            await self._redis.ping()
        except _TRANSIENT as exc:
            raise ConsumerError(f"cannot reach Redis at {self.url}: {exc}") from exc

    def add_message_handler(self, handler: Handler) -> None:
        """Call ``handler(tick)`` for every tick; plain functions and coroutines both work."""
        self._handlers.append(handler)

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise ConsumerError("call connect() first")
        return self._redis

    def stream_key(self, symbol: str) -> str:
        """``market_data_stream:{RELIANCE.NSE}`` (the braces are the cluster hash tag)."""
        return f"{self.options.stream_prefix}:{{{normalize_symbol(symbol)}}}"

    async def subscribe_to_symbol(self, symbol: str) -> None:
        await self.subscribe_to_multiple_symbols([symbol])

    async def subscribe_to_multiple_symbols(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            key = self.stream_key(symbol)
            if key not in self._positions:
                await self._add_stream(key, self.options.start)

    async def subscribe_to_all_symbols(self) -> None:
        """Every symbol stream there is, and every one created later (found by SCAN)."""
        self._all = True
        await self._discover(self.options.start)

    async def unsubscribe_from_symbol(self, symbol: str) -> None:
        self._positions.pop(self.stream_key(symbol), None)

    @property
    def symbols(self) -> list[str]:
        cut = len(self.options.stream_prefix) + 2
        return sorted(key[cut:-1] for key in self._positions)

    async def _add_stream(self, key: str, start: str) -> None:
        group = self.options.group
        if group is not None:
            await self._ensure_group(key, start)
            self._positions[key] = ">"
        elif start == "$":
            # A concrete id, so that a reconnect resumes here instead of at "now".
            last = cast(list[Entry], await self.redis.xrevrange(key, count=1))
            self._positions[key] = last[0][0].decode() if last else "0-0"
        else:
            self._positions[key] = start

    async def _ensure_group(self, key: str, start: str) -> None:
        assert self.options.group is not None
        try:
            await self.redis.xgroup_create(key, self.options.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _discover(self, start: str) -> None:
        self._last_discovery = time.monotonic()
        async for raw in self.redis.scan_iter(  # every master's keys, in a cluster
            match=f"{self.options.stream_prefix}:{{*}}", count=1000, _type="STREAM"
        ):
            key = raw.decode() if isinstance(raw, bytes) else raw
            if key not in self._positions:
                await self._add_stream(key, start)

    # ------------------------------------------------------------------ reading

    async def get_latest_tick(self, symbol: str) -> MarketDataTick | None:
        entries = await self.redis.xrevrange(self.stream_key(symbol), count=1)
        if not entries:
            return None
        return self._convert(*cast(Entry, entries[0]))

    async def get_stream_info(self, symbol: str) -> dict[str, Any]:
        """Length, first/last entry ids and consumer groups of a symbol's stream."""
        key = self.stream_key(symbol)
        try:
            info = await self.redis.xinfo_stream(key)
        except ResponseError as exc:
            raise ConsumerError(f"no stream for {symbol} ({key}): {exc}") from exc
        first, last = info.get("first-entry"), info.get("last-entry")
        return {
            "stream": key,
            "length": info.get("length"),
            "first_entry_id": first[0].decode() if first else None,
            "last_entry_id": last[0].decode() if last else None,
            "groups": info.get("groups"),
        }

    async def run(self) -> None:
        """Consume until :meth:`disconnect`; survives Redis restarts."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if self._all and (
                    time.monotonic() - self._last_discovery
                    >= self.options.discover_interval_seconds
                ):
                    await self._discover("0")  # created after we subscribed: read it all
                if not self._positions:
                    await asyncio.sleep(min(1.0, self.options.block_ms / 1000))
                    continue
                if self.options.group is None:
                    await self._read_plain()
                else:
                    await self._read_group()
                delay = 0.2
            except _TRANSIENT as exc:
                if self._stopping.is_set():
                    break
                self.reconnects += 1
                log.warning("Redis unavailable (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay + random.random() * delay)
                delay = min(delay * 2, self.options.reconnect_max_seconds)
            except Exception:
                if self._stopping.is_set():
                    break  # disconnect() closed the client under a read (a cluster pipeline
                    # then fails with whatever half-closed connection it touched)
                raise

    def _by_slot(self, positions: dict[str, str]) -> list[dict[Any, Any]]:
        groups: dict[int, dict[Any, Any]] = {}
        for key, position in positions.items():
            groups.setdefault(key_slot(key), {})[key] = position
        return list(groups.values())

    async def _read_cluster(self, group: str | None) -> list[tuple[bytes, list[Entry]]]:
        """One non-blocking read per slot, pipelined (each master gets its slots' reads in
        one round trip); waits ``cluster_poll_ms`` when nothing came."""
        pipe = self.redis.pipeline(transaction=False)
        for positions in self._by_slot(self._positions):
            if group is None:
                pipe.xread(positions, count=self.options.batch_size)
            else:
                pipe.xreadgroup(group, self.consumer_name, positions,
                                count=self.options.batch_size)  # fmt: skip
        replies = await pipe.execute(raise_on_error=False)
        out: list[tuple[bytes, list[Entry]]] = []
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            out += cast(list[tuple[bytes, list[Entry]]], reply or [])
        if not out:
            await asyncio.sleep(self.options.cluster_poll_ms / 1000)
        return out

    async def _read_plain(self) -> None:
        if is_cluster(self.redis):
            reply: Any = await self._read_cluster(None)
        else:
            positions: dict[Any, Any] = dict(self._positions)
            reply = await self.redis.xread(
                positions, count=self.options.batch_size, block=self.options.block_ms
            )
        for stream, entries in cast(list[tuple[bytes, list[Entry]]], reply or []):
            key = stream.decode()
            for entry_id, fields in entries:
                if key not in self._positions:
                    break  # unsubscribed meanwhile
                await self._deliver(entry_id, fields)
                self._positions[key] = entry_id.decode()

    async def _read_group(self) -> None:
        group = self.options.group
        assert group is not None
        await self._retry_pending()
        positions: dict[Any, Any] = dict(self._positions)
        try:
            if is_cluster(self.redis):
                reply: Any = await self._read_cluster(group)
            else:
                reply = await self.redis.xreadgroup(
                    group, self.consumer_name, positions,
                    count=self.options.batch_size, block=self.options.block_ms,
                )  # fmt: skip
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group vanished (%s); recreating it", exc)
            for key in self._positions:
                await self._ensure_group(key, "0")
            return
        for stream, entries in cast(list[tuple[bytes, list[Entry]]], reply or []):
            await self._handle_group_entries(stream.decode(), entries)

    async def _handle_group_entries(self, key: str, entries: list[Entry]) -> None:
        assert self.options.group is not None
        done = []
        for entry_id, fields in entries:
            if await self._deliver(entry_id, fields):
                done.append(entry_id)
        if done:
            await self.redis.xack(key, self.options.group, *done)

    async def _retry_pending(self) -> None:
        """Retry our own failed entries after the delay; claim a dead consumer's entries."""
        group = self.options.group
        assert group is not None
        now = time.monotonic()
        if now - self._last_claim < min(self.options.retry_delay_seconds, 1.0):
            return
        self._last_claim = now
        retry_ms = int(self.options.retry_delay_seconds * 1000)
        claim_ms = int(self.options.claim_idle_seconds * 1000)
        for key in list(self._positions):
            mine: list[dict[str, Any]] = await self.redis.xpending_range(
                key, group, min="-", max="+", count=self.options.batch_size,
                consumername=self.consumer_name, idle=retry_ms,
            )  # fmt: skip
            poison = [p["message_id"] for p in mine
                      if p["times_delivered"] >= self.options.max_deliveries]  # fmt: skip
            if poison:
                log.error("giving up on %d ticks of %s after %d failed deliveries",
                          len(poison), key, self.options.max_deliveries)  # fmt: skip
                await self.redis.xack(key, group, *poison)
            retry: list[Any] = [p["message_id"] for p in mine if p["message_id"] not in poison]
            if retry:
                claimed = await self.redis.xclaim(key, group, self.consumer_name, retry_ms, retry)
                await self._handle_group_entries(key, cast(list[Entry], claimed))
            result = await self.redis.xautoclaim(
                key, group, self.consumer_name, claim_ms, "0-0", count=self.options.batch_size
            )
            if result[1]:
                log.warning("claimed %d ticks of %s left by a dead consumer", len(result[1]), key)
                await self._handle_group_entries(key, cast(list[Entry], result[1]))

    async def _deliver(self, entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
        """Run every handler; ``True`` when all succeeded (or the entry is unreadable)."""
        tick = self._convert(entry_id, fields)
        if tick is None:
            return True
        self.delivered += 1
        for handler in self._handlers:
            try:
                result = handler(tick)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.handler_errors += 1
                log.exception("handler %r failed on %s %s", handler, tick.symbol, tick.stream_id)
                return False
        return True

    def _convert(self, entry_id: bytes, fields: dict[bytes, bytes]) -> MarketDataTick | None:
        raw = fields.get(_TICK_FIELD) if fields else None
        if raw is None:
            return None
        try:
            return MarketDataTick.from_tick(decode_tick(raw), entry_id.decode())
        except msgspec.DecodeError:
            log.warning("skipping an unreadable entry %s", entry_id)
            return None

    async def disconnect(self) -> None:
        """Stop :meth:`run` (after the current batch) and close the connection."""
        self._stopping.set()
        if self._redis is not None:
            await self._redis.aclose()

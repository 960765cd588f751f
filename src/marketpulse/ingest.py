"""The ingest role: feeds → Redis.

Runs one :class:`FeedSupervisor` per configured feed, all delivering into one
:class:`TickPublisher`, and reports each feed's status to Redis every second so that any API
process can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from dataclasses import dataclass

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from marketpulse.bus.connection import create_redis
from marketpulse.bus.control import (
    FEED_ACTIONS,
    ControlCommand,
    control_position,
    read_commands,
    record_result,
    wanted,
)
from marketpulse.bus.gaps import OUTAGE_FIELD, OutageReport
from marketpulse.bus.publisher import TickPublisher
from marketpulse.bus.status import FeedReport, write_reports
from marketpulse.config import Settings, read_symbols_file
from marketpulse.credentials import CredentialStore
from marketpulse.feeds.base import (
    ConnectionState,
    FeedAdapter,
    FeedError,
    FeedOutage,
    FeedSupervisor,
    ReconnectPolicy,
)
from marketpulse.feeds.registry import build_feed, feed_spec
from marketpulse.model import Mode, SymbolError, Tick, normalize_symbol
from marketpulse.store.instruments import resolve_instruments
from marketpulse.store.subscriptions import Source, persisted_for_feed, sync_configured
from marketpulse.subscriptions import TrackedSymbol, remove_subscriptions, write_subscriptions

log = logging.getLogger(__name__)


async def read_store_backlog(redis: aioredis.Redis, settings: Settings) -> list[int | None]:
    """Per firehose shard, the entries the store group has not acknowledged: ``lag``
    (undelivered) plus ``pending`` (delivered, not acknowledged) from ``XINFO GROUPS``;
    ``None`` for a shard without the group (no store has ever run there: nothing to protect).

    Redis reports ``lag`` as null when it cannot tell (XDEL tombstones, a group set to an
    arbitrary id) and older servers do not report it. Then, if the group has been delivered
    the newest entry (``last-delivered-id`` is the stream's ``last-generated-id``) nothing is
    undelivered and the backlog is ``pending``; otherwise nothing smaller is known to be safe
    and the whole stream length (``XLEN``) is taken — spilling early, never late.
    """
    group = settings.store_consumer_group
    names = (group, group.encode())
    keys = settings.firehose_keys
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.xinfo_groups(key)
        pipe.xlen(key)
    replies = await pipe.execute(raise_on_error=False)
    out: list[int | None] = []
    for index, key in enumerate(keys):
        groups, length = replies[2 * index], replies[2 * index + 1]
        if isinstance(groups, ResponseError):
            out.append(None)  # no such stream yet
            continue
        if isinstance(groups, Exception):
            raise groups
        info = next((g for g in groups if g.get("name") in names), None)
        if info is None:
            out.append(None)
            continue
        pending = int(info.get("pending") or 0)
        lag = info.get("lag")
        if lag is not None:
            out.append(int(lag) + pending)
            continue
        stream = await redis.xinfo_stream(key)
        caught_up = info.get("last-delivered-id") == stream.get("last-generated-id")
        out.append(pending if caught_up else max(int(length), pending))
    return out


async def monitor_store_backlog(
    redis: aioredis.Redis, settings: Settings, publisher: TickPublisher, interval: float = 1.0
) -> None:
    """Tell the publisher the store's backlog per shard every ``interval`` seconds (never per
    tick), so that it spills before Redis trims entries the store has not read. While it spills
    or replays, five times as often: replay moves at most the room under the high watermark per
    reading, so fresher readings replay faster."""
    while True:
        mark = publisher.firehose_mark()
        try:
            async with asyncio.timeout(5.0):  # a stalled read must not freeze the readings
                backlog = await read_store_backlog(redis, settings)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("store backlog unavailable: %r", exc)
        else:
            publisher.observe_backlog(backlog, mark)
        await asyncio.sleep(interval / 5 if publisher.spilling else interval)


@dataclass(slots=True)
class FeedRun:
    """One feed of this process: its supervisor, what it streams (symbol → subscription) and
    whether ``POST /api/ws/stop`` stopped it."""

    supervisor: FeedSupervisor
    tracked: dict[str, TrackedSymbol]
    symbol_of: dict[str, str]  # token → symbol, read by the sink for every tick
    task: asyncio.Task[None] | None = None
    stopped: bool = False


class IngestService:
    """Owns the feeds of one process and the publisher they share."""

    def __init__(
        self, redis: aioredis.Redis, settings: Settings, pool: asyncpg.Pool | None = None
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._pool = pool
        self.publisher = TickPublisher(settings)
        self.feeds: dict[str, FeedRun] = {}
        self._host = socket.gethostname()
        self._control_after: str | None = None
        self._outage_tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._credentials = CredentialStore.in_home(settings.marketpulse_home)

    def _policy(self) -> ReconnectPolicy:
        s = self._settings
        return ReconnectPolicy(
            min_delay=s.reconnect_min_seconds,
            max_delay=s.reconnect_max_seconds,
            heartbeat_timeout=s.feed_heartbeat_timeout_seconds,
            stall_timeout=s.feed_stall_timeout_seconds,
        )

    def add_feed(self, adapter: FeedAdapter, tracked: list[TrackedSymbol]) -> FeedSupervisor:
        symbol_of: dict[str, str] = {}
        publish = self.publisher.publish

        async def sink(batch: list[Tick]) -> None:
            # Decoders know broker tokens only; the instrument master names them.
            for tick in batch:
                if tick.symbol is None:
                    tick.symbol = symbol_of.get(tick.token)
            await publish(batch)

        def outage(event: FeedOutage) -> None:
            symbols = sorted({symbol_of.get(t, f"{adapter.name}:{t}") for t in event.tokens})
            task = asyncio.create_task(self._report_outage(event, symbols))
            self._outage_tasks.add(task)
            task.add_done_callback(self._outage_tasks.discard)

        supervisor = FeedSupervisor(adapter, sink, self._policy(), on_outage=outage)
        run = FeedRun(supervisor, {}, symbol_of)
        self.feeds[adapter.name] = run
        self._track(run, tracked)
        return supervisor

    async def _report_outage(self, event: FeedOutage, symbols: list[str]) -> None:
        """Hand the outage to the store role (``{prefix}:gaps``), which records it per symbol
        and repairs it from the provider's history."""
        if event.end - event.start < self._settings.gap_min_seconds or not symbols:
            return
        body = msgspec.json.encode(OutageReport(event.feed, symbols, event.start, event.end,
                                                event.reason))  # fmt: skip
        try:
            add = functools.partial(self._redis.xadd, self._settings.gaps_key, {OUTAGE_FIELD: body},
                                    maxlen=10_000, approximate=True)  # fmt: skip
            await self._retry(add)
        except Exception as exc:
            log.error("could not record a %s outage of %d symbols: %s", event.feed, len(symbols),
                      exc)  # fmt: skip

    def _track(self, run: FeedRun, tracked: list[TrackedSymbol]) -> None:
        for item in tracked:
            run.tracked[item.symbol] = item
            run.symbol_of[item.token] = item.symbol
        run.supervisor.adapter.track(tracked)

    async def resolve(self, provider: str, items: list[str]) -> list[TrackedSymbol]:
        """Instrument-master lookup for feeds' start-up subscriptions."""
        return await self._resolve_master(provider, items, self._settings.subscribe_mode)

    async def _resolve_master(
        self, provider: str, items: list[str], mode: str
    ) -> list[TrackedSymbol]:
        if self._pool is None:
            raise RuntimeError("resolving instruments needs the database (DATABASE_URL)")
        return await resolve_instruments(self._pool, provider, items, mode)

    async def _resolve_for(self, feed: str, items: list[str], mode: str) -> list[TrackedSymbol]:
        spec = feed_spec(feed)
        if spec.resolve is not None:
            return spec.resolve(self.feeds[feed].supervisor.adapter, items, mode)
        return await self._resolve_master(feed, items, mode)

    async def add_configured_feeds(self) -> None:
        """Build every feed in ``FEEDS`` with its start-up subscriptions plus the persisted
        ones (restored across restarts): the ``subscriptions`` table in PostgreSQL and the
        wanted set in Redis that the subscription endpoints keep."""
        self._control_after = await control_position(self._redis, self._settings)
        for name in self._settings.feeds:
            adapter, tracked = await build_feed(name, self._settings, self.resolve)
            self.add_feed(adapter, tracked)
            restored = await wanted(self._redis, self._settings, name)
            if self._pool is not None:
                try:
                    await self._record_configured(name, tracked)
                except (asyncpg.PostgresError, OSError, ValueError) as exc:
                    log.warning("%s: cannot record the configured subscriptions: %s", name, exc)
                try:
                    restored.update(await persisted_for_feed(self._pool, name))
                except (asyncpg.PostgresError, OSError) as exc:
                    log.error("%s: cannot read persisted subscriptions: %s", name, exc)
            by_mode: dict[str, list[str]] = {}
            for symbol, mode in restored.items():
                if symbol not in self.feeds[name].tracked:
                    by_mode.setdefault(mode, []).append(symbol)
            for mode, symbols in by_mode.items():
                self._track(self.feeds[name], await self._restorable(name, symbols, mode))

    async def _restorable(self, name: str, symbols: list[str], mode: str) -> list[TrackedSymbol]:
        """``symbols`` resolved for feed ``name``; one the feed cannot stream (an every-feed
        subscription another feed serves, a delisted instrument) is logged and left out rather
        than keeping the others from being restored."""
        try:
            return await self._resolve_for(name, symbols, mode)
        except Exception:
            found: list[TrackedSymbol] = []
            for symbol in symbols:
                try:
                    found += await self._resolve_for(name, [symbol], mode)
                except Exception as exc:
                    log.warning("%s: cannot restore the subscription of %s: %s", name, symbol,
                                exc)  # fmt: skip
            return found

    async def _record_configured(self, name: str, tracked: list[TrackedSymbol]) -> None:
        """Persist what ``SUBSCRIBE`` / ``SYMBOLS_FILE`` asked ``name`` to stream (not the
        simulator's whole-universe default), so the subscriptions list shows every source."""
        settings = self._settings
        assert self._pool is not None
        if not settings.subscribe:
            return
        from_file: set[str] = set()
        if settings.symbols_file is not None:
            for item in read_symbols_file(settings.symbols_file):
                with contextlib.suppress(SymbolError):
                    from_file.add(normalize_symbol(item))
        sources: list[tuple[str, Source]] = [
            (t.symbol, "file" if t.symbol in from_file else "settings") for t in tracked
        ]
        await sync_configured(self._pool, name, sources, settings.subscribe_mode)

    async def run(self, flush_timeout: float = 10.0) -> None:
        """Run the feeds until cancelled, then flush what they delivered to Redis.

        Cancellation stops the feeds first; the publisher keeps writing until its buffer is
        empty (or ``flush_timeout`` passes, reported with the count left over).
        """
        if not self.feeds:
            await self.add_configured_feeds()
        publisher = asyncio.create_task(self.publisher.run(), name="ingest:publisher")
        assert self._settings.redis_url
        monitor_redis = create_redis(  # never the publisher's socket
            self._settings.redis_url, cluster=self._settings.cluster_mode
        )
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(
                    monitor_store_backlog(monitor_redis, self._settings, self.publisher),
                    name="ingest:backlog",
                )
                group.create_task(self._report_loop(), name="ingest:status")
                group.create_task(self._control_loop(), name="ingest:control")
                for name, feed in self.feeds.items():
                    self._start_feed(name, feed)
        finally:
            self._group = None
            self.publisher.stop()
            try:
                await asyncio.wait_for(asyncio.shield(publisher), flush_timeout)
            except TimeoutError:
                publisher.cancel()
                log.error(
                    "ingest stopped with %d ticks not written to Redis", self.publisher.backlog
                )
            with contextlib.suppress(RedisError, OSError):
                await monitor_redis.aclose()
            await self.report()

    def _start_feed(self, name: str, feed: FeedRun) -> None:
        """Connect ``feed`` (again) with all its subscriptions, as a task of the role."""
        assert self._group is not None, "feeds start inside run()"
        feed.stopped = False
        feed.supervisor.fatal_error = None
        feed.task = self._group.create_task(self._run_feed(name, feed), name=f"ingest:{name}")

    async def _stop_feed(self, feed: FeedRun) -> None:
        """Disconnect ``feed`` cleanly and keep it stopped (no reconnect) until started; its
        subscriptions stay, so a start streams the same instruments."""
        feed.stopped = True
        task, feed.task = feed.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _run_feed(self, name: str, feed: FeedRun) -> None:
        await self._subscribe(feed, list(feed.tracked.values()))
        try:
            await feed.supervisor.run()
        except Exception as exc:
            # A fatal feed error (e.g. rejected credentials) stops that feed, not the process:
            # its status says why, and the other feeds and roles keep running.
            log.error("feed %s stopped: %s", name, exc)

    async def _subscribe(self, feed: FeedRun, tracked: list[TrackedSymbol]) -> None:
        by_mode: dict[Mode, list[str]] = {}
        for item in tracked:
            by_mode.setdefault(Mode(item.mode), []).append(item.token)
        for mode, tokens in by_mode.items():
            await feed.supervisor.subscribe(tokens, mode)
        await self._retry(write_subscriptions, self._redis, self._settings, tracked)

    async def _control_loop(self) -> None:
        """Apply subscription changes and feed start/stop commands from any API replica."""
        after = self._control_after or await control_position(self._redis, self._settings)
        while True:
            try:
                after, commands = await read_commands(self._redis, self._settings, after)
            except (RedisError, OSError) as exc:
                log.debug("control stream unavailable: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for command in commands:
                for name in [command.feed] if command.feed else list(self.feeds):
                    if name not in self.feeds:
                        continue  # another ingest process runs that feed
                    outcome = await self._apply(name, command)
                    with contextlib.suppress(RedisError, OSError):
                        await record_result(self._redis, self._settings, command.id, name, outcome)

    async def _apply(self, name: str, command: ControlCommand) -> str:
        feed = self.feeds[name]
        if command.action in FEED_ACTIONS:
            return await self._control_feed(name, feed, command.action)
        try:
            if command.action == "subscribe":
                tracked = await self._resolve_for(name, command.symbols, command.mode)
                self._track(feed, tracked)
                await self._subscribe(feed, tracked)
            else:
                gone = [feed.tracked.pop(s) for s in command.symbols if s in feed.tracked]
                await feed.supervisor.unsubscribe([t.token for t in gone])
                await remove_subscriptions(self._redis, self._settings, [t.symbol for t in gone])
        except Exception as exc:  # reported to the caller through the command's result
            log.warning("%s %s %s failed: %s", name, command.action, command.symbols, exc)
            return str(exc) or type(exc).__name__
        return "ok"

    async def _control_feed(self, name: str, feed: FeedRun, action: str) -> str:
        if action == "stop":
            if feed.stopped:
                return "ok"  # already stopped: asking twice is not an error
            await self._stop_feed(feed)
            log.info("feed %s stopped on request", name)
        else:
            if feed.task is not None and not feed.task.done():
                return "ok"  # already running
            self._start_feed(name, feed)
            log.info("feed %s started on request", name)
        await self.report()  # show the new state now, not within the next second
        return "ok"

    def _token_expiry(self, name: str) -> float | None:
        """When the broker token saved by ``marketpulse login`` expires; ``None`` when the
        feed needs none or the store cannot be read."""
        try:
            return self._credentials.entry(name).expires_at
        except (FeedError, OSError):
            return None

    async def _retry(self, fn: object, *args: object) -> None:
        assert callable(fn)
        delay = 0.5
        while True:
            try:
                await fn(*args)
                return
            except (RedisError, OSError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def reports(self) -> list[FeedReport]:
        now = time.time()
        out = []
        for name, feed in self.feeds.items():
            sup = feed.supervisor
            statuses = sup.statuses
            states = {s.state for s in statuses}
            if feed.stopped:
                state = ConnectionState.STOPPED
            elif ConnectionState.CONNECTED in states:
                state = ConnectionState.CONNECTED
            elif ConnectionState.FAILED in states:
                state = ConnectionState.FAILED
            else:
                state = next(iter(states), ConnectionState.CONNECTING)
            errors = [s.last_error for s in statuses if s.last_error]
            out.append(
                FeedReport(
                    name=name,
                    state=state.value,
                    connected=sup.connected,
                    connections=sum(1 for s in statuses if s.state is ConnectionState.CONNECTED),
                    instruments=len(sup.subscriptions),
                    reconnects=sum(s.reconnects for s in statuses),
                    ticks_received=sup.ticks_received,
                    updated_at=now,
                    pid=os.getpid(),
                    host=self._host,
                    last_tick_at=sup.last_tick_at,
                    last_error=errors[0] if errors else None,
                    buffered=self.publisher.backlog,
                    dropped=self.publisher.dropped,
                    redis_ok=self.publisher.redis_ok,
                    spilling=self.publisher.spilling,
                    spilled=self.publisher.spilled,
                    replayed=self.publisher.replayed,
                    spill_backlog=self.publisher.spill_backlog,
                    token_expires_at=self._token_expiry(name),
                )
            )
        return out

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.report()

    async def report(self) -> None:
        """Write the status of every feed to Redis once."""
        try:
            await write_reports(self._redis, self._settings, self.reports())
        except (RedisError, OSError) as exc:
            log.debug("status report failed: %s", exc)

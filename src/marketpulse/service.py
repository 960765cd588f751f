"""Running roles: ``serve`` puts ingest, store and api in one event loop; each can run alone.

The roles only talk through Redis and PostgreSQL, so one process or three run the same code.
Shutdown (SIGINT/SIGTERM) goes in data-flow order: feeds stop and the publisher flushes to
Redis, the store commits and acknowledges what is in the firehose, then the API closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from marketpulse.api.app import create_app
from marketpulse.bus.connection import check_redis, create_redis
from marketpulse.config import Settings
from marketpulse.httpserver import QuietServer, listen, make_server, start
from marketpulse.ingest import IngestService
from marketpulse.store.database import create_pool, upgrade
from marketpulse.store.gaps import GapRepairer
from marketpulse.store.ticks import prepare_connection
from marketpulse.store.worker import TickStoreWorker

log = logging.getLogger(__name__)


class Role(StrEnum):
    INGEST = "ingest"
    STORE = "store"
    API = "api"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a started API listens (the real port when 0 was asked for)."""

    host: str
    port: int

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


async def serve(
    settings: Settings,
    roles: frozenset[Role] = ALL_ROLES,
    *,
    on_ready: Callable[[Endpoints | None], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``roles`` until SIGINT/SIGTERM (or ``stop`` is set), then shut down in order."""
    assert settings.redis_url, "resolve embedded servers first"
    assert settings.database_url, "resolve embedded servers first"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    redis = create_redis(settings.redis_url, cluster=settings.cluster_mode)
    await check_redis(redis, settings.redis_url)
    pool = None
    store: TickStoreWorker | None = None
    server: QuietServer | None = None
    tasks: dict[Role, asyncio.Task[None]] = {}
    gaps: GapRepairer | None = None
    repairer: asyncio.Task[None] | None = None
    try:
        await upgrade(settings.database_url)
        pool = await create_pool(settings.database_url, max_size=8, init=prepare_connection)
        if Role.STORE in roles:
            assert pool is not None
            store = TickStoreWorker(redis, pool, settings)
            tasks[Role.STORE] = asyncio.create_task(store.run(), name="role:store")
            gaps = GapRepairer(redis, pool, settings)
            repairer = asyncio.create_task(gaps.run(), name="store:gaps")
        if Role.INGEST in roles:
            ingest = IngestService(redis, settings, pool)
            await ingest.add_configured_feeds()
            tasks[Role.INGEST] = asyncio.create_task(ingest.run(), name="role:ingest")
        endpoints = None
        if Role.API in roles:
            sock = listen(settings.api_host, settings.api_port)
            endpoints = Endpoints(settings.api_host, sock.getsockname()[1])
            server = make_server(
                create_app(settings, redis=redis, pool=pool),
                ws_per_message_deflate=settings.ws_compression,
            )
            tasks[Role.API] = await start(server, sock)
        # Everything built at start-up (app, routes, instrument tables) lives as long as the
        # process: freezing it keeps full garbage collections from walking it again and again,
        # pauses that otherwise show up as tens of milliseconds of tick latency.
        gc.freeze()
        if on_ready is not None:
            on_ready(endpoints)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            [stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await _shutdown(tasks, store, server)
        if gaps is not None and repairer is not None:
            gaps.stop()
            _, stuck = await asyncio.wait({repairer}, timeout=5)
            if stuck:
                repairer.cancel()
        if pool is not None:
            await pool.close()
        await redis.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _shutdown(
    tasks: dict[Role, asyncio.Task[None]],
    store: TickStoreWorker | None,
    server: QuietServer | None,
) -> None:
    ingest_task = tasks.get(Role.INGEST)
    if ingest_task is not None:
        ingest_task.cancel()  # the ingest role flushes its publisher on cancellation
        await asyncio.gather(ingest_task, return_exceptions=True)
    store_task = tasks.get(Role.STORE)
    if store is not None and store_task is not None:
        store.stop()
        try:
            await asyncio.wait_for(asyncio.shield(store_task), 20)
        except (TimeoutError, Exception) as exc:
            log.error("store did not stop cleanly: %r", exc)
            store_task.cancel()
    api_task = tasks.get(Role.API)
    if server is not None and api_task is not None:
        server.should_exit = True
        _, stuck = await asyncio.wait({api_task}, timeout=15)
        if stuck:
            log.error("the API did not shut down within 15 s; stopping it")
            server.force_exit = True
            api_task.cancel()
            await asyncio.gather(api_task, return_exceptions=True)

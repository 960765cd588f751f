"""A PostgreSQL outage loses no tick: the store keeps them pending and stores them after.

Runs against a private embedded PostgreSQL that the test stops and starts again (same data
directory, same port), so the shared test database is never disturbed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from marketpulse.bus.publisher import TickPublisher
from marketpulse.config import Settings
from marketpulse.embedded import EmbeddedServices
from marketpulse.model import Mode, Tick
from marketpulse.store.database import create_pool, upgrade
from marketpulse.store.ticks import prepare_connection
from marketpulse.store.worker import TickStoreWorker
from tests.support.polling import until
from tests.support.ticks import sample_ticks


@pytest.fixture
async def private_postgres() -> AsyncIterator[EmbeddedServices]:
    home = Path(tempfile.mkdtemp(prefix="mp-pg-outage-"))
    services = EmbeddedServices(home, want_redis=False, want_postgres=True)
    await asyncio.to_thread(services.start)
    yield services
    await asyncio.to_thread(services.stop)
    shutil.rmtree(home, ignore_errors=True)


async def publish(settings: Settings, batch: list[Tick]) -> None:
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    await publisher.publish(batch)
    publisher.stop()
    await asyncio.wait_for(task, 10)


def worker_reached(task: asyncio.Task[None], condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition``, but a worker that died surfaces its exception instead of a timeout."""

    def check() -> bool:
        if task.done():
            task.result()
            raise AssertionError("the store worker stopped on its own")
        return condition()

    return check


async def test_ticks_published_during_a_database_outage_are_stored_once_it_returns(
    private_postgres: EmbeddedServices, settings: Settings, redis: aioredis.Redis
) -> None:
    url = private_postgres.database_url
    assert url is not None
    await upgrade(url)
    settings = settings.model_copy(update={"database_url": url})
    pool = await create_pool(url, init=prepare_connection)
    worker = TickStoreWorker(redis, pool, settings)
    task = asyncio.create_task(worker.run())
    await publish(settings, sample_ticks(300, 1, Mode.QUOTE))
    await until(worker_reached(task, lambda: worker.stored >= 300))

    await asyncio.to_thread(private_postgres.stop)
    await publish(settings, sample_ticks(400, 2, Mode.QUOTE))
    await until(worker_reached(task, lambda: not worker.database_ok))
    pending = sum([(await redis.xpending(k, "store"))["pending"] for k in settings.firehose_keys])
    assert pending > 0  # read, not acknowledged: still in Redis

    await asyncio.to_thread(private_postgres.start)
    assert private_postgres.database_url == url  # same port: clients simply reconnect
    await until(worker_reached(task, lambda: worker.stored >= 700 and worker.database_ok))
    worker.stop()
    await asyncio.wait_for(task, 30)
    rows = await pool.fetch("SELECT stream, stream_id FROM ticks")
    await pool.close()
    assert len(rows) == len({(r["stream"], r["stream_id"]) for r in rows}) == 700

"""The FastAPI application: REST routes, the WebSocket hub and their shared resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from marketpulse import __version__
from marketpulse.api.errors import document_error_body, install_error_handlers
from marketpulse.api.hub import Hub
from marketpulse.api.routes import auth as auth_routes
from marketpulse.api.routes import backfill, health, history, market, subscriptions, ws
from marketpulse.api.routes import exchanges as exchange_routes
from marketpulse.api.routes import feed_control as feed_control_routes
from marketpulse.api.routes import instrument_subscriptions as instrument_subscription_routes
from marketpulse.api.routes import instruments as instrument_routes
from marketpulse.api.routes import providers as provider_routes
from marketpulse.api.routes import sectors as sector_routes
from marketpulse.api.routes import seed as seed_routes
from marketpulse.api.stats import StatsSampler
from marketpulse.bus.connection import create_redis
from marketpulse.config import Settings
from marketpulse.quote_service import MarketDataService
from marketpulse.reference.sync_jobs import SyncJobs
from marketpulse.store.backfill import BackfillJobs
from marketpulse.store.database import create_pool
from marketpulse.store.orm import create_engine, create_sessionmaker

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    pool: asyncpg.Pool | None = None,
) -> FastAPI:
    """Build the app. Pass ``redis``/``pool`` to share a process's connections (``serve``);
    otherwise the app opens its own from the settings and closes them on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            own_redis = redis
            if own_redis is None:
                assert settings.redis_url, "REDIS_URL must be resolved before the API starts"
                own_redis = create_redis(settings.redis_url, cluster=settings.cluster_mode)
                stack.push_async_callback(own_redis.aclose)
            own_pool = pool
            if own_pool is None:
                assert settings.database_url, "DATABASE_URL must be resolved before the API"
                own_pool = await create_pool(settings.database_url, max_size=5)
                stack.push_async_callback(own_pool.close)
            engine = create_engine(settings.database_url or "", pool_size=5)
            stack.push_async_callback(engine.dispose)
            app.state.sessionmaker = create_sessionmaker(engine)
            hub = Hub(own_redis, settings)
            sampler = StatsSampler(own_redis, settings)
            app.state.settings = settings
            app.state.redis = own_redis
            app.state.pool = own_pool
            app.state.hub = hub
            app.state.sampler = sampler
            app.state.backfills = backfills = BackfillJobs(own_pool, settings)
            app.state.instrument_syncs = syncs = SyncJobs(own_pool, settings)
            app.state.quotes = quotes = MarketDataService(own_redis, own_pool, settings)
            tasks = [
                asyncio.create_task(quotes.run(), name="api:quote-refresh"),
                asyncio.create_task(hub.run(), name="api:hub"),
                asyncio.create_task(hub.watchdog(), name="api:hub-watchdog"),
                asyncio.create_task(sampler.run(), name="api:stats"),
            ]
            try:
                yield
            finally:
                await backfills.stop()
                await syncs.stop()
                for task in tasks:
                    task.cancel()
                # Bounded: a task stuck in a Redis read must not keep the process alive.
                _, stuck = await asyncio.wait(tasks, timeout=5)
                if stuck:
                    log.warning("API background tasks did not stop: %s",
                                ", ".join(t.get_name() for t in stuck))  # fmt: skip

    app = FastAPI(
        title="marketpulse",
        version=__version__,
        description="Real-time market data: live quotes, tick streams and history.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    document_error_body(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"], max_age=600,
        )  # fmt: skip
    app.include_router(auth_routes.router)
    app.include_router(health.router)
    app.include_router(market.router)
    app.include_router(history.router)
    app.include_router(backfill.router)
    app.include_router(subscriptions.router)
    app.include_router(instrument_subscription_routes.router)
    app.include_router(feed_control_routes.router)
    app.include_router(seed_routes.router)
    app.include_router(exchange_routes.router)
    app.include_router(instrument_routes.router)
    app.include_router(provider_routes.router)
    app.include_router(sector_routes.router)
    app.include_router(ws.router)

    @app.get("/", tags=["health"], summary="Service information")
    async def root() -> dict[str, Any]:
        return {
            "service": "marketpulse",
            "version": __version__,
            "docs": "/docs",
            "websocket": "/ws",
            "feeds": settings.feeds,
        }

    return app

"""Typed dependencies: what a route needs, taken from the application state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from marketpulse.api.hub import Hub
from marketpulse.api.stats import StatsSampler
from marketpulse.config import Settings
from marketpulse.quote_service import MarketDataService


def _settings(conn: HTTPConnection) -> Settings:
    return cast(Settings, conn.app.state.settings)


def _redis(conn: HTTPConnection) -> aioredis.Redis:
    return cast(aioredis.Redis, conn.app.state.redis)


def _pool(request: Request) -> asyncpg.Pool:
    return cast(asyncpg.Pool, request.app.state.pool)


def _hub(conn: HTTPConnection) -> Hub:
    return cast(Hub, conn.app.state.hub)


def _quotes(request: Request) -> MarketDataService:
    return cast(MarketDataService, request.app.state.quotes)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    maker = cast(async_sessionmaker[AsyncSession], request.app.state.sessionmaker)
    async with maker() as session:
        yield session


def _sampler(request: Request) -> StatsSampler:
    return cast(StatsSampler, request.app.state.sampler)


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
HubDep = Annotated[Hub, Depends(_hub)]
SamplerDep = Annotated[StatsSampler, Depends(_sampler)]
QuotesDep = Annotated[MarketDataService, Depends(_quotes)]
SessionDep = Annotated[AsyncSession, Depends(_session)]

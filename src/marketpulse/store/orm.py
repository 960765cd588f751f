"""SQLAlchemy 2 async plumbing for the reference-data and account tables.

The hot paths (tick COPY, candle merge) use asyncpg directly; the administrative REST surface
(users, API keys, exchanges, instruments, providers, sectors, subscriptions) uses the ORM,
on one engine per API process. The schema itself is owned by the Alembic migrations; the
mapped classes describe it and never create it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from marketpulse.store.database import sqlalchemy_url


class Base(DeclarativeBase):
    """Declarative base of every mapped table."""


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine on asyncpg; ``pool_pre_ping`` so a restarted PostgreSQL is survived."""
    return create_async_engine(
        sqlalchemy_url(database_url), pool_size=pool_size, pool_pre_ping=True
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

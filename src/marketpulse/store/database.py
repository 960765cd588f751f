"""PostgreSQL connection handling: URL forms, the asyncpg pool, and schema migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketpulse.config import redact_url

log = logging.getLogger(__name__)

Connection = asyncpg.Connection | PoolConnectionProxy
"""A plain connection or one borrowed from a pool; the store code accepts both."""

ConnectionInit = Callable[[asyncpg.Connection], Awaitable[None]]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    OSError,
    asyncpg.InterfaceError,
    # A server shutting down mid-statement can leave a pooled connection's protocol state
    # machine confused ("cannot switch to state 11; another operation is in progress").
    asyncpg.InternalClientError,
)
"""What a database outage looks like to asyncpg callers: catch these, report, keep running."""


class DatabaseError(RuntimeError):
    """The database cannot be reached or migrated; the message says which and why."""


def asyncpg_dsn(url: str) -> str:
    """The URL in the form asyncpg accepts (drops a SQLAlchemy ``+driver`` suffix)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseError(f"DATABASE_URL {url!r} is not a URL like postgresql://user@host/db")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise DatabaseError(f"DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}")
    return f"postgresql://{rest}"


def sqlalchemy_url(url: str) -> str:
    """The URL in the form SQLAlchemy's async engine needs (``postgresql+asyncpg://``)."""
    return "postgresql+asyncpg://" + asyncpg_dsn(url).partition("://")[2]


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    init: ConnectionInit | None = None,
) -> asyncpg.Pool:
    """An asyncpg pool, with a clear error when the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=min_size,
            max_size=max_size,
            command_timeout=60,
            init=init,  # type: ignore[arg-type]  # the stubs want a Protocol; same signature
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}") from exc
    assert pool is not None
    return pool


def _alembic_config(url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; runs its own event loop)."""
    from alembic import command

    command.upgrade(_alembic_config(url), revision)  # type: ignore[arg-type]


def downgrade_sync(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(url), revision)  # type: ignore[arg-type]


def current_revision_sync(url: str) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    import sqlalchemy.ext.asyncio as sa_async
    from alembic.runtime.migration import MigrationContext

    async def read() -> str | None:
        engine = sa_async.create_async_engine(sqlalchemy_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


async def upgrade(url: str) -> None:
    """Apply all migrations from async code (Alembic runs in a worker thread)."""
    try:
        await asyncio.to_thread(upgrade_sync, url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"migrating {redact_url(url)} failed: {exc}") from exc

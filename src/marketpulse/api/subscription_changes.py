"""One way to change what the feeds stream: persist in PostgreSQL, then tell the running feeds.

Both ``POST /subscribe`` (the original endpoint) and ``POST /api/instruments/subscribe`` come
here, so a subscription made through either is in the ``subscriptions`` table (restored when an
ingest process starts) and reaches the running feeds through the Redis control stream.
"""

from __future__ import annotations

import time
from typing import Literal

import asyncpg
import redis.asyncio as aioredis
from fastapi import HTTPException
from redis.exceptions import RedisError

from marketpulse.bus.control import ControlCommand, send_command
from marketpulse.bus.status import fresh_reports, read_reports
from marketpulse.config import Settings
from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.subscriptions import delete_subscriptions, save_subscriptions

SubscriptionAction = Literal["subscribe", "unsubscribe"]


def normalise_symbols(symbols: list[str]) -> list[str]:
    """Canonical symbols, duplicates dropped in order; every unparseable one is named in one 422."""
    good: list[str] = []
    bad: list[str] = []
    for raw in symbols:
        try:
            good.append(normalize_symbol(raw))
        except SymbolError as exc:
            bad.append(str(exc))
    if bad:
        raise HTTPException(422, bad)
    return list(dict.fromkeys(good))


async def reported_feeds(redis: aioredis.Redis, settings: Settings, *, fresh: bool) -> list[str]:
    """Names of the feeds ingest processes report (only live processes when ``fresh``);
    Redis being down is a 503."""
    try:
        reports = await read_reports(redis, settings)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    if fresh:
        reports = fresh_reports(reports, time.time())
    return [r.name for r in reports]


async def persist_change(
    pool: asyncpg.Pool, action: SubscriptionAction, symbols: list[str], mode: str,
    feed: str | None,
) -> None:  # fmt: skip
    """Write the change to the ``subscriptions`` table; the database being down is a 503."""
    try:
        if action == "subscribe":
            await save_subscriptions(pool, symbols, mode, feed, "api")
        else:
            await delete_subscriptions(pool, symbols, feed)
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc


async def dispatch_change(
    redis: aioredis.Redis,
    settings: Settings,
    action: SubscriptionAction,
    symbols: list[str],
    mode: str,
    feed: str | None,
    feeds: list[str],
) -> ControlCommand:
    """Send the change to ``feeds`` over the control stream (and their Redis wanted sets)."""
    command = ControlCommand(action, symbols, mode, feed)
    try:
        await send_command(redis, settings, command, feeds)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    return command

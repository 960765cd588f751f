"""Persisted subscriptions in PostgreSQL: the ``subscriptions`` table (migration 0005).

Redis carries subscription changes to the running feeds, but Redis is a cache that may be
flushed; this table is the durable record an ingest process reads whenever it starts, so what
an administrator subscribed survives restarts of Redis and of every role. A row's ``feed`` is
``NULL`` when it applies to every feed that can stream the symbol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

Source = Literal["api", "settings", "file"]


class SubscriptionRow(msgspec.Struct, frozen=True):
    """One persisted subscription, as ``GET /api/instruments/subscriptions/list`` shows it."""

    id: int
    symbol: str
    mode: str
    feed: str | None
    source: str
    created_at: datetime
    updated_at: datetime


class ProviderToken(msgspec.Struct, frozen=True):
    """An instrument named the way one provider knows it (``instrument_providers``)."""

    provider: str
    token: str
    exchange: str | None = None

    def describe(self) -> str:
        where = f"{self.exchange}:" if self.exchange else ""
        return f"{self.provider} token {where}{self.token}"


class TokenResolution(msgspec.Struct, frozen=True):
    """Canonical symbols for the tokens found, and what could not be resolved (and why)."""

    symbols: list[str]
    problems: list[str]


async def save_subscriptions(
    pool: asyncpg.Pool, symbols: Sequence[str], mode: str, feed: str | None, source: Source
) -> None:
    """Insert or update one row per symbol for ``feed`` (``None``: every feed)."""
    if not symbols:
        return
    await pool.execute(
        """
        INSERT INTO subscriptions (symbol, mode, feed, source)
        SELECT s, $2, $3, $4 FROM unnest($1::text[]) AS s
        ON CONFLICT ON CONSTRAINT subscriptions_symbol_feed_key DO UPDATE SET
            mode = EXCLUDED.mode, source = EXCLUDED.source, updated_at = now()
        WHERE subscriptions.mode IS DISTINCT FROM EXCLUDED.mode
           OR subscriptions.source IS DISTINCT FROM EXCLUDED.source
        """,
        list(symbols),
        mode,
        feed,
        source,
    )


async def delete_subscriptions(pool: asyncpg.Pool, symbols: Sequence[str], feed: str | None) -> int:
    """Remove the rows of ``symbols``: for ``feed`` only, or for every feed when ``None``.
    Returns how many rows went."""
    if not symbols:
        return 0
    status: str = await pool.execute(
        "DELETE FROM subscriptions WHERE symbol = ANY($1::text[]) "
        "AND ($2::text IS NULL OR feed = $2::text)",
        list(symbols),
        feed,
    )
    return int(status.rsplit(" ", 1)[-1])


async def list_subscriptions(
    pool: asyncpg.Pool,
    *,
    feed: str | None = None,
    mode: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[SubscriptionRow]]:
    """A page of rows ordered by symbol, and the total that match the filters."""
    where = "($1::text IS NULL OR feed = $1::text) AND ($2::text IS NULL OR mode = $2::text)"
    async with pool.acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM subscriptions WHERE {where}", feed, mode)
        rows = await conn.fetch(
            "SELECT id, symbol, mode, feed, source, created_at, updated_at FROM subscriptions "
            f"WHERE {where} ORDER BY symbol, feed NULLS FIRST LIMIT $3 OFFSET $4",
            feed,
            mode,
            limit,
            offset,
        )
    return int(total), [SubscriptionRow(**dict(r)) for r in rows]


async def persisted_for_feed(pool: asyncpg.Pool, feed: str) -> dict[str, str]:
    """Symbol → mode that ``feed`` must stream: its own rows and the every-feed rows, a row
    naming the feed winning over the every-feed row of the same symbol."""
    rows = await pool.fetch(
        "SELECT symbol, mode FROM subscriptions WHERE feed = $1 OR feed IS NULL "
        "ORDER BY feed NULLS FIRST",
        feed,
    )
    return {r["symbol"]: r["mode"] for r in rows}


async def sync_configured(
    pool: asyncpg.Pool, feed: str, symbols: Iterable[tuple[str, Source]], mode: str
) -> None:
    """Record what ``SUBSCRIBE`` / ``SYMBOLS_FILE`` make ``feed`` stream at start, replacing the
    previous start's configured rows (a symbol removed from the setting goes); rows the API
    wrote are never touched."""
    wanted = dict(symbols)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM subscriptions WHERE feed = $1 AND source IN ('settings', 'file') "
            "AND NOT (symbol = ANY($2::text[]))",
            feed,
            list(wanted),
        )
        if wanted:
            await conn.execute(
                """
                INSERT INTO subscriptions (symbol, mode, feed, source)
                SELECT s, $3, $4, src FROM unnest($1::text[], $2::text[]) AS t(s, src)
                ON CONFLICT ON CONSTRAINT subscriptions_symbol_feed_key DO UPDATE SET
                    mode = EXCLUDED.mode, source = EXCLUDED.source, updated_at = now()
                WHERE subscriptions.source <> 'api'
                  AND (subscriptions.mode, subscriptions.source)
                      IS DISTINCT FROM (EXCLUDED.mode, EXCLUDED.source)
                """,
                list(wanted),
                list(wanted.values()),
                mode,
                feed,
            )


async def resolve_tokens(pool: asyncpg.Pool, tokens: Sequence[ProviderToken]) -> TokenResolution:
    """Canonical symbols of provider tokens through ``instrument_providers``, in the caller's
    order; a token that is unknown, or ambiguous without its exchange, is a problem naming it."""
    rows = await pool.fetch(
        "SELECT p.provider, p.exchange, p.token, i.symbol FROM instrument_providers p "
        "JOIN instruments i ON i.id = p.instrument_id "
        "WHERE (p.provider, p.token) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [t.provider for t in tokens],
        [t.token for t in tokens],
    )
    symbols: list[str] = []
    problems: list[str] = []
    for wanted in tokens:
        matches = sorted(
            {
                (r["exchange"], r["symbol"])
                for r in rows
                if r["provider"] == wanted.provider
                and r["token"] == wanted.token
                and (wanted.exchange is None or r["exchange"] == wanted.exchange)
            }
        )
        if not matches:
            problems.append(f"unknown {wanted.describe()}")
        elif len(matches) > 1:
            where = ", ".join(f"{exchange} ({symbol})" for exchange, symbol in matches)
            problems.append(f"{wanted.describe()} is listed on {where}; give its exchange")
        else:
            symbols.append(matches[0][1])
    return TokenResolution(list(dict.fromkeys(symbols)), problems)

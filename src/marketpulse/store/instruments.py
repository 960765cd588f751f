"""The instrument master in PostgreSQL: syncing a provider's list, and resolving symbols.

A sync never silently overwrites: rows of the incoming list that contradict each other — one
``(exchange, token)`` for two symbols, or one symbol under two tokens — are reported as
collisions and left out, and the report says what was added, changed and removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import asyncpg
import msgspec

from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.store.database import Connection
from marketpulse.subscriptions import TrackedSymbol


class UnknownInstrumentError(LookupError):
    """Symbols or tokens the instrument master does not know for a provider."""


class InstrumentRecord(msgspec.Struct, frozen=True):
    """One row of a provider's instrument master, already in canonical terms."""

    symbol: str  # canonical, e.g. RELIANCE.NSE
    exchange: str
    token: str  # the provider's id
    broker_symbol: str | None = None
    name: str | None = None
    instrument_type: str = "EQ"
    lot_size: int = 1
    tick_size: float = 0.05
    expiry: date | None = None
    strike: float | None = None
    isin: str | None = None


@dataclass
class ParsedMaster:
    """What a provider's instrument master yielded: canonical records plus the rows skipped,
    counted by reason (for the sync report)."""

    records: list[InstrumentRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        parts = [f"{len(self.records)} instruments"]
        if self.skipped:
            total = sum(self.skipped.values())
            worst = sorted(self.skipped.items(), key=lambda kv: -kv[1])[:5]
            parts.append(
                f"{total} rows skipped ({'; '.join(f'{n}× {reason}' for reason, n in worst)})"
            )
        return ", ".join(parts)


@dataclass(slots=True)
class SyncReport:
    provider: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    collisions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.provider}: {self.added} added, {self.changed} changed, "
            f"{self.unchanged} unchanged, {self.removed} removed, "
            f"{len(self.collisions)} collisions"
        )


Progress = Callable[[int, int], None]


def find_collisions(
    records: Sequence[InstrumentRecord],
) -> tuple[list[InstrumentRecord], list[str]]:
    """Split ``records`` into consistent ones and descriptions of the contradictions."""
    by_key: dict[tuple[str, str], list[InstrumentRecord]] = {}
    by_symbol: dict[str, list[InstrumentRecord]] = {}
    for record in records:
        by_key.setdefault((record.exchange, record.token), []).append(record)
        by_symbol.setdefault(record.symbol, []).append(record)
    bad: set[int] = set()
    problems: list[str] = []
    for (exchange, token), group in by_key.items():
        symbols = sorted({r.symbol for r in group})
        if len(symbols) > 1:
            problems.append(f"token {exchange}:{token} is listed for {', '.join(symbols)}")
            bad.update(id(r) for r in group)
    for symbol, group in by_symbol.items():
        tokens = sorted({f"{r.exchange}:{r.token}" for r in group})
        if len(tokens) > 1:
            problems.append(f"symbol {symbol} is listed under tokens {', '.join(tokens)}")
            bad.update(id(r) for r in group)
    return [r for r in records if id(r) not in bad], problems


_CHUNK = 2000


async def sync_instruments(
    pool: asyncpg.Pool,
    provider: str,
    records: Sequence[InstrumentRecord],
    progress: Progress | None = None,
) -> SyncReport:
    """Make the master's ``provider`` mappings equal to ``records`` (minus collisions)."""
    report = SyncReport(provider)
    good, report.collisions = find_collisions(records)
    async with pool.acquire() as conn, conn.transaction():
        existing = {
            (r["exchange"], r["token"]): (r["symbol"], r["broker_symbol"], r["name"],
                                          r["instrument_type"], r["lot_size"],
                                          float(r["tick_size"]), r["expiry"],
                                          float(r["strike"]) if r["strike"] is not None
                                          else None, r["isin"])
            for r in await conn.fetch(
                "SELECT p.exchange, p.token, p.broker_symbol, i.symbol, i.name, "
                "i.instrument_type, i.lot_size, i.tick_size, i.expiry, i.strike, i.isin "
                "FROM instrument_providers p JOIN instruments i ON i.id = p.instrument_id "
                "WHERE p.provider = $1",
                provider,
            )
        }  # fmt: skip
        known_exchanges = {r["code"] for r in await conn.fetch("SELECT code FROM exchanges")}
        seen: set[tuple[str, str]] = set()
        todo: list[InstrumentRecord] = []
        for record in good:
            if record.exchange not in known_exchanges:
                report.collisions.append(
                    f"{record.symbol}: exchange {record.exchange} is not in the exchanges table"
                )
                continue
            key = (record.exchange, record.token)
            seen.add(key)
            current = existing.get(key)
            fields = (record.symbol, record.broker_symbol, record.name, record.instrument_type,
                      record.lot_size, record.tick_size, record.expiry, record.strike,
                      record.isin)  # fmt: skip
            if current is None:
                report.added += 1
            elif current != fields:
                report.changed += 1
            else:
                report.unchanged += 1
                continue
            todo.append(record)
        total = len(todo)
        for start in range(0, total, _CHUNK):
            chunk = todo[start : start + _CHUNK]
            await _upsert(conn, provider, chunk)
            if progress is not None:
                progress(min(start + _CHUNK, total), total)
        gone = [key for key in existing if key not in seen]
        if gone:
            await conn.executemany(
                "DELETE FROM instrument_providers WHERE provider = $1 AND exchange = $2 "
                "AND token = $3",
                [(provider, exchange, token) for exchange, token in gone],
            )
            await conn.execute(
                "UPDATE instruments SET active = false, updated_at = now() WHERE active AND "
                "NOT EXISTS (SELECT 1 FROM instrument_providers p WHERE p.instrument_id = "
                "instruments.id)"
            )
        report.removed = len(gone)
    if progress is not None and total == 0:
        progress(0, 0)
    return report


async def _upsert(conn: Connection, provider: str, chunk: list[InstrumentRecord]) -> None:
    ids = await conn.fetch(
        """
        INSERT INTO instruments (symbol, exchange, name, instrument_type, lot_size, tick_size,
                                 expiry, strike, isin)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                             $6::numeric[], $7::date[], $8::numeric[], $9::text[])
        ON CONFLICT (symbol) DO UPDATE SET
            name = EXCLUDED.name, instrument_type = EXCLUDED.instrument_type,
            lot_size = EXCLUDED.lot_size, tick_size = EXCLUDED.tick_size,
            expiry = EXCLUDED.expiry, strike = EXCLUDED.strike,
            isin = COALESCE(EXCLUDED.isin, instruments.isin), active = true, updated_at = now()
        RETURNING id, symbol
        """,
        [r.symbol for r in chunk], [r.exchange for r in chunk], [r.name for r in chunk],
        [r.instrument_type for r in chunk], [r.lot_size for r in chunk],
        [r.tick_size for r in chunk], [r.expiry for r in chunk], [r.strike for r in chunk],
        [r.isin for r in chunk],
    )  # fmt: skip
    id_of = {row["symbol"]: row["id"] for row in ids}
    # A token that moved to another instrument, or an instrument that changed token, replaces
    # the old mapping rather than violating a unique constraint.
    await conn.execute(
        "DELETE FROM instrument_providers WHERE provider = $1 AND "
        "(instrument_id = ANY($2::bigint[]) OR (exchange, token) IN "
        "(SELECT * FROM unnest($3::text[], $4::text[])))",
        provider, list(id_of.values()), [r.exchange for r in chunk], [r.token for r in chunk],
    )  # fmt: skip
    await conn.executemany(
        "INSERT INTO instrument_providers (instrument_id, provider, exchange, token, "
        "broker_symbol) VALUES ($1, $2, $3, $4, $5)",
        [(id_of[r.symbol], provider, r.exchange, r.token, r.broker_symbol) for r in chunk],
    )


async def lookup_instruments(
    pool: asyncpg.Pool, provider: str, items: Iterable[str], mode: str = "full"
) -> tuple[list[TrackedSymbol], list[str]]:
    """Canonical symbols (``RELIANCE.NSE``) or provider tokens (``738561``) as ``provider``
    knows them, in the caller's order, and the items the instrument master does not have."""
    wanted: list[tuple[bool, str]] = []  # (is_symbol, value), in the caller's order
    for item in items:
        text = item.strip()
        if not text:
            continue
        if text.isdigit():
            wanted.append((False, text))
            continue
        try:
            wanted.append((True, normalize_symbol(text)))
        except SymbolError:
            wanted.append((False, text))  # broker ids that are not numeric (Fyers, Yahoo)
    symbols = [v for is_symbol, v in wanted if is_symbol]
    tokens = [v for is_symbol, v in wanted if not is_symbol]
    rows = await pool.fetch(
        "SELECT i.symbol, p.token, p.exchange, p.broker_symbol FROM instrument_providers p "
        "JOIN instruments i ON i.id = p.instrument_id WHERE p.provider = $1 AND "
        "(i.symbol = ANY($2::text[]) OR p.token = ANY($3::text[]))",
        provider, symbols, tokens,
    )  # fmt: skip
    found = {r["symbol"]: r for r in rows}
    by_token = {r["token"]: r for r in rows}
    tracked: list[TrackedSymbol] = []
    unknown: list[str] = []
    for is_symbol, value in wanted:
        row = (found if is_symbol else by_token).get(value)
        if row is None:
            unknown.append(value)
            continue
        tracked.append(
            TrackedSymbol(symbol=row["symbol"], source=provider, token=row["token"],
                          exchange=row["exchange"], mode=mode,
                          broker_symbol=row["broker_symbol"])
        )  # fmt: skip
    return tracked, unknown


async def resolve_instruments(
    pool: asyncpg.Pool, provider: str, items: Iterable[str], mode: str = "full"
) -> list[TrackedSymbol]:
    """Turn canonical symbols (``RELIANCE.NSE``) or provider tokens (``738561``) into
    subscriptions for ``provider``; unknown ones raise :class:`UnknownInstrumentError` naming
    all of them, with a hint to sync the instrument master."""
    tracked, unknown = await lookup_instruments(pool, provider, items, mode)
    if unknown:
        raise UnknownInstrumentError(
            f"{provider}: unknown instruments {', '.join(unknown)}; run `marketpulse "
            f"instruments sync --provider {provider}` or check the spelling"
        )
    return tracked

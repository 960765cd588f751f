"""Instrument search: prefix and fuzzy matching over symbol and name, ranked.

Ranking, best first:

0. the symbol, or its name part (``RELIANCE`` of ``RELIANCE.NSE``), equals the query;
1. the symbol starts with the query;
2. the instrument name starts with the query;
3. a fuzzy match (pg_trgm strict word similarity of the query against symbol or name, at least
   ``FUZZY_THRESHOLD``), or without pg_trgm a substring match;

Within a tier: higher similarity, then shorter symbol, then symbol. Tiers 0-2 are index range
scans (btree ``text_pattern_ops`` on ``upper(symbol)`` and ``lower(name)``), each capped at
``_CANDIDATES`` rows. Tier 3 is searched only when they do not fill the page (it can never
outrank them), so autocomplete-style prefix queries never pay for similarity: fuzzy matching
uses the pg_trgm GIN indexes. Without pg_trgm (a server without contrib) tier 3 is a
substring scan instead, and typos no longer match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.reference.models import Instrument

FUZZY_THRESHOLD = 0.3
"""pg_trgm strict word similarity a fuzzy match needs: 0.3 lets one transposition in an
8-letter word through (RELAINCE → RELIANCE scores 0.38); the pg_trgm default (0.5) would not.
Strict (whole-word) similarity, unlike plain word similarity, does not let a shorter partial
match (RELAXO: 0.44) outrank the word the user misspelt."""

MIN_FUZZY_LENGTH = 3
"""Shorter queries have too few trigrams to be fuzzy about; they match by prefix only."""

_CANDIDATES = 200  # per candidate set, before ranking


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Optional restrictions applied inside every candidate set (so they never starve it)."""

    exchange: str | None = None
    instrument_type: str | None = None
    active: bool | None = True


@dataclass(frozen=True, slots=True)
class SearchHit:
    instrument: Instrument
    match: str  # exact | symbol_prefix | name_prefix | fuzzy | substring
    score: float  # similarity in [0, 1] (1 for exact and prefix matches)


_TIERS = ("exact", "symbol_prefix", "name_prefix")


def prefix_range(prefix: str) -> tuple[str, str]:
    """``[low, high)`` bounds (byte order, as ``text_pattern_ops`` compares) of the strings that
    start with ``prefix``. Explicit bounds instead of ``LIKE :p`` keep the btree range scan in
    PostgreSQL's generic plans of prepared statements, which cannot look inside a parameter."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:  # no next code point; such a query matches nothing realistic
        return prefix, prefix + "\U0010ffff"
    return prefix, prefix[:-1] + chr(last + 1)


def _where(filters: SearchFilter, params: dict[str, Any]) -> str:
    clauses = ["TRUE"]
    if filters.exchange is not None:
        params["f_exchange"] = filters.exchange.upper()
        clauses.append("exchange = :f_exchange")
    if filters.instrument_type is not None:
        params["f_type"] = filters.instrument_type.upper()
        clauses.append("instrument_type = :f_type")
    if filters.active is not None:
        params["f_active"] = filters.active
        clauses.append("active = :f_active")
    return " AND ".join(clauses)


def build_prefix_sql(filters: SearchFilter) -> tuple[str, dict[str, Any]]:
    """Tiers 0-2, each an index range scan capped at ``_CANDIDATES`` rows, shortest first (so
    ``INFY.NSE`` comes before its hundreds of options). The caller binds the
    :func:`prefix_range` bounds of ``NAME.``, ``NAME`` (upper case) and the lower-cased query.
    Pure, so testable without a database."""
    params: dict[str, Any] = {"pool": _CANDIDATES}
    where = _where(filters, params)
    sql = f"""
        (SELECT id, symbol, 0 AS tier FROM instruments
         WHERE {where} AND upper(symbol) ~>=~ :exact_lo AND upper(symbol) ~<~ :exact_hi
         ORDER BY symbol LIMIT :pool)
        UNION ALL
        (SELECT id, symbol, 1 AS tier FROM instruments
         WHERE {where} AND upper(symbol) ~>=~ :symbol_lo AND upper(symbol) ~<~ :symbol_hi
         ORDER BY length(symbol), upper(symbol) LIMIT :pool)
        UNION ALL
        (SELECT id, symbol, 2 AS tier FROM instruments
         WHERE {where} AND lower(name) ~>=~ :name_lo AND lower(name) ~<~ :name_hi
         ORDER BY length(name), lower(name) LIMIT :pool)
    """
    return sql, params


def build_fuzzy_sql(trigram: bool, filters: SearchFilter) -> tuple[str, dict[str, Any]]:
    """Tier 3 without the rows tiers 0-2 found (``found``), best ``remaining`` first: trigram
    similarity through the GIN indexes, or a substring scan without pg_trgm. The caller binds
    ``q``/``uq``/``lq``, ``found`` and ``remaining``."""
    params: dict[str, Any] = {}
    where = _where(filters, params)
    if trigram:
        sql = f"""
            SELECT id, symbol, greatest(strict_word_similarity(:q, symbol),
                                        strict_word_similarity(:q, coalesce(name, ''))) AS score
            FROM instruments
            WHERE {where} AND (:q <<% symbol OR :q <<% name) AND NOT (id = ANY(:found))
            ORDER BY score DESC, length(symbol), symbol LIMIT :remaining
        """
    else:
        sql = f"""
            SELECT id, symbol, 0.0 AS score FROM instruments
            WHERE {where} AND (strpos(upper(symbol), :uq) > 0 OR strpos(lower(name), :lq) > 0)
              AND NOT (id = ANY(:found))
            ORDER BY length(symbol), symbol LIMIT :remaining
        """
    return sql, params


async def trigram_available(session: AsyncSession) -> bool:
    """Whether pg_trgm is installed in this database (migration 0004 installs it if it can)."""
    return bool(
        await session.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')")
        )
    )


async def search_instruments(
    session: AsyncSession,
    query: str,
    *,
    limit: int = 20,
    filters: SearchFilter | None = None,
    fuzzy: bool | None = None,
) -> list[SearchHit]:
    """Instruments matching ``query`` (see the module docstring for the ranking).

    ``fuzzy=None`` uses pg_trgm when the database has it; ``False`` forces the prefix/substring
    path (what a database without pg_trgm gets)."""
    q = query.strip()
    if not q:
        return []
    filters = filters or SearchFilter()
    uq = q.upper()
    sql, params = build_prefix_sql(filters)
    (exact_lo, exact_hi), (symbol_lo, symbol_hi), (name_lo, name_hi) = (
        prefix_range(uq + "."), prefix_range(uq), prefix_range(q.lower())
    )  # fmt: skip
    params.update(exact_lo=exact_lo, exact_hi=exact_hi, symbol_lo=symbol_lo,
                  symbol_hi=symbol_hi, name_lo=name_lo, name_hi=name_hi)  # fmt: skip
    best: dict[int, tuple[int, float, str]] = {}  # id → (tier, score, symbol)
    for row in (await session.execute(text(sql), params)).all():
        tier = 0 if row.symbol.upper() == uq else row.tier
        if row.id not in best or tier < best[row.id][0]:
            best[row.id] = (tier, 1.0, row.symbol)
    ranked = sorted(best.items(), key=lambda kv: (kv[1][0], len(kv[1][2]), kv[1][2]))[:limit]
    if len(ranked) < limit:
        if fuzzy is None:
            fuzzy = await trigram_available(session)
        use_trigram = fuzzy and len(q) >= MIN_FUZZY_LENGTH
        if use_trigram or not fuzzy:
            ranked += await _fuzzy(session, q, use_trigram, filters, [i for i, _ in ranked],
                                   limit - len(ranked))  # fmt: skip
    if not ranked:
        return []
    rows = await session.scalars(
        select(Instrument).where(Instrument.id.in_([i for i, _ in ranked]))
    )
    by_id = {instrument.id: instrument for instrument in rows.all()}
    fallback = "fuzzy" if fuzzy else "substring"
    return [
        SearchHit(by_id[i], _TIERS[tier] if tier < len(_TIERS) else fallback, score)
        for i, (tier, score, _) in ranked
    ]


async def _fuzzy(
    session: AsyncSession,
    q: str,
    trigram: bool,
    filters: SearchFilter,
    found: list[int],
    remaining: int,
) -> list[tuple[int, tuple[int, float, str]]]:
    sql, params = build_fuzzy_sql(trigram, filters)
    params.update(q=q, uq=q.upper(), lq=q.lower(), found=found, remaining=remaining)
    if not trigram:
        rows = (await session.execute(text(sql), params)).all()
        return [(r.id, (3, float(r.score), r.symbol)) for r in rows]
    # The planner does not know strict_word_similarity costs ~10 µs a row and, when it expects
    # many matches, prefers a sequential scan (1.4 s on 100k rows) to the GIN bitmap (<0.1 s):
    # seqscan is switched off for this one statement, then restored.
    seqscan = await session.scalar(
        text(
            "SELECT current_setting('enable_seqscan'), "
            "set_config('pg_trgm.strict_word_similarity_threshold', :t, true), "
            "set_config('enable_seqscan', 'off', true)"
        ),
        {"t": str(FUZZY_THRESHOLD)},
    )
    try:
        rows = (await session.execute(text(sql), params)).all()
    finally:
        await session.execute(text("SELECT set_config('enable_seqscan', :v, true)"), {"v": seqscan})
    return [(r.id, (3, float(r.score), r.symbol)) for r in rows]

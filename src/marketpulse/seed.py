"""Reference data for a fresh installation: exchanges, NIFTY-style sectors and the demo universe.

``marketpulse db seed`` and ``POST /api/admin/seed`` run :func:`seed_reference_data`. Every
step is an upsert that only writes rows whose values differ, so running it twice changes
nothing, and the report counts what was inserted, updated and left unchanged.

The demo universe is the simulator's (``feeds/simulator/universe.py``), written with ``sim``
provider mappings so that its tokens resolve like any broker's (``POST
/api/instruments/subscribe`` with ``tokens``). The sector step needs the ``sectors`` table and
``instruments.sector_id`` (migration 0004); without them it is skipped and the report says so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from typing import Final

import asyncpg

from marketpulse.config import Settings
from marketpulse.feeds.simulator.adapter import SimulatorAdapter
from marketpulse.feeds.simulator.universe import Universe
from marketpulse.store.database import Connection

SeedProgress = Callable[[str, int, int], None]
"""``progress(step, done, total)``, called as each step finishes."""

SIM_PROVIDER: Final = "sim"

# NSE's industry classification (the sectors the NIFTY sectoral indices follow).
SECTORS: Final[tuple[tuple[str, str], ...]] = (
    ("Automobile and Auto Components", "Vehicle makers and auto component suppliers"),
    ("Capital Goods", "Industrial machinery, electrical equipment, defence electronics"),
    ("Chemicals", "Commodity and specialty chemicals, fertilisers"),
    ("Construction", "Engineering, procurement and construction; infrastructure"),
    ("Construction Materials", "Cement and building products"),
    ("Consumer Durables", "Paints, jewellery, appliances and other durables"),
    ("Consumer Services", "Retail, e-commerce, food delivery, hotels"),
    ("Fast Moving Consumer Goods", "Food, beverages, personal care, tobacco"),
    ("Financial Services", "Banks, NBFCs, insurance and capital-market companies"),
    ("Healthcare", "Pharmaceuticals and hospitals"),
    ("Information Technology", "IT services and software"),
    ("Media Entertainment & Publication", "Broadcasting, film, publishing"),
    ("Metals & Mining", "Steel, aluminium, mining and metal trading"),
    ("Oil Gas & Consumable Fuels", "Oil and gas exploration, refining, coal"),
    ("Power", "Power generation and transmission"),
    ("Realty", "Real-estate developers"),
    ("Services", "Ports, airlines, logistics and other services"),
    ("Telecommunication", "Telecom operators and equipment"),
    ("Textiles", "Textiles and apparel"),
)

# The simulator's NIFTY 50 stocks (NSE symbol) → sector; indices and futures have none.
SECTOR_OF: Final[dict[str, str]] = {
    "ADANIENT": "Metals & Mining", "ADANIPORTS": "Services", "APOLLOHOSP": "Healthcare",
    "ASIANPAINT": "Consumer Durables", "AXISBANK": "Financial Services",
    "BAJAJ-AUTO": "Automobile and Auto Components", "BAJAJFINSV": "Financial Services",
    "BAJFINANCE": "Financial Services", "BEL": "Capital Goods",
    "BHARTIARTL": "Telecommunication", "CIPLA": "Healthcare",
    "COALINDIA": "Oil Gas & Consumable Fuels", "DRREDDY": "Healthcare",
    "EICHERMOT": "Automobile and Auto Components", "ETERNAL": "Consumer Services",
    "GRASIM": "Construction Materials", "HCLTECH": "Information Technology",
    "HDFCBANK": "Financial Services", "HDFCLIFE": "Financial Services",
    "HINDALCO": "Metals & Mining", "HINDUNILVR": "Fast Moving Consumer Goods",
    "ICICIBANK": "Financial Services", "INDIGO": "Services", "INFY": "Information Technology",
    "ITC": "Fast Moving Consumer Goods", "JIOFIN": "Financial Services",
    "JSWSTEEL": "Metals & Mining", "KOTAKBANK": "Financial Services", "LT": "Construction",
    "M&M": "Automobile and Auto Components", "MARUTI": "Automobile and Auto Components",
    "MAXHEALTH": "Healthcare", "NESTLEIND": "Fast Moving Consumer Goods", "NTPC": "Power",
    "ONGC": "Oil Gas & Consumable Fuels", "POWERGRID": "Power",
    "RELIANCE": "Oil Gas & Consumable Fuels", "SBILIFE": "Financial Services",
    "SBIN": "Financial Services", "SHRIRAMFIN": "Financial Services",
    "SUNPHARMA": "Healthcare", "TATACONSUM": "Fast Moving Consumer Goods",
    "TATASTEEL": "Metals & Mining", "TCS": "Information Technology",
    "TECHM": "Information Technology", "TITAN": "Consumer Durables",
    "TMPV": "Automobile and Auto Components", "TRENT": "Consumer Services",
    "ULTRACEMCO": "Construction Materials", "WIPRO": "Information Technology",
}  # fmt: skip


@dataclass(slots=True)
class StepCounts:
    """What one step did to its table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


@dataclass(slots=True)
class SeedReport:
    """Counts per step (``exchanges``, ``sectors``, ``instruments``, ``sim_mappings``) and
    notes on what was skipped."""

    steps: dict[str, StepCounts] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.inserted or c.updated for c in self.steps.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "steps": {
                name: {"inserted": c.inserted, "updated": c.updated, "unchanged": c.unchanged}
                for name, c in self.steps.items()
            },
            "changed": self.changed,
            "notes": self.notes,
        }


def seed_exchanges() -> list[tuple[str, str, str, str, str, time, time, time | None, bool]]:
    """The exchanges migration 0001 creates (one list, kept there), as typed rows."""
    module = importlib.import_module("marketpulse.migrations.versions.0001_initial")
    return [
        (code, name, tz, country, currency, time.fromisoformat(open_),
         time.fromisoformat(close), time.fromisoformat(pre) if pre else None, is_24h)
        for code, name, tz, country, currency, open_, close, pre, is_24h in module.EXCHANGES
    ]  # fmt: skip


def _counts(rows: list[asyncpg.Record], total: int) -> StepCounts:
    """``rows`` are what an upsert ``RETURNING (xmax = 0) AS inserted`` gave back: written
    rows only, since its ``DO UPDATE … WHERE`` skips rows whose values are already equal."""
    inserted = sum(1 for r in rows if r["inserted"])
    return StepCounts(inserted, len(rows) - inserted, total - len(rows))


async def _upsert_exchanges(conn: Connection) -> StepCounts:
    rows = seed_exchanges()
    written = await conn.fetch(
        """
        INSERT INTO exchanges (code, name, timezone, country, currency, session_open,
                               session_close, pre_open, is_24h)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::time[], $7::time[], $8::time[], $9::boolean[])
        ON CONFLICT (code) DO UPDATE SET
            name = EXCLUDED.name, timezone = EXCLUDED.timezone, country = EXCLUDED.country,
            currency = EXCLUDED.currency, session_open = EXCLUDED.session_open,
            session_close = EXCLUDED.session_close, pre_open = EXCLUDED.pre_open,
            is_24h = EXCLUDED.is_24h, updated_at = now()
        WHERE (exchanges.name, exchanges.timezone, exchanges.country, exchanges.currency,
               exchanges.session_open, exchanges.session_close, exchanges.pre_open,
               exchanges.is_24h)
              IS DISTINCT FROM
              (EXCLUDED.name, EXCLUDED.timezone, EXCLUDED.country, EXCLUDED.currency,
               EXCLUDED.session_open, EXCLUDED.session_close, EXCLUDED.pre_open,
               EXCLUDED.is_24h)
        RETURNING (xmax = 0) AS inserted
        """,
        *([row[i] for row in rows] for i in range(9)),
    )
    return _counts(written, len(rows))


async def _has_sectors(conn: Connection) -> bool:
    """Whether migration 0004's ``sectors`` table and ``instruments.sector_id`` exist."""
    return bool(
        await conn.fetchval(
            "SELECT to_regclass('sectors') IS NOT NULL AND EXISTS (SELECT 1 FROM "
            "information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'instruments' AND column_name = 'sector_id')"
        )
    )


async def _upsert_sectors(conn: Connection) -> StepCounts:
    written = await conn.fetch(
        """
        INSERT INTO sectors (name, description)
        SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, updated_at = now()
        WHERE sectors.description IS DISTINCT FROM EXCLUDED.description
        RETURNING (xmax = 0) AS inserted
        """,
        [name for name, _ in SECTORS],
        [description for _, description in SECTORS],
    )
    return _counts(written, len(SECTORS))


async def _upsert_instruments(
    conn: Connection, universe: Universe, with_sectors: bool
) -> StepCounts:
    """The universe's instruments; a sector is assigned only where none is yet, so an
    administrator's assignment survives a re-seed."""
    instruments = universe.instruments
    sector = "(SELECT id FROM sectors WHERE name = t.sector)" if with_sectors else "NULL"
    sector_columns = ", sector_id" if with_sectors else ""
    sector_values = f", {sector}" if with_sectors else ""
    sector_update = (
        ", sector_id = COALESCE(instruments.sector_id, EXCLUDED.sector_id)" if with_sectors else ""
    )
    sector_compare = (
        " OR (instruments.sector_id IS NULL AND EXCLUDED.sector_id IS NOT NULL)"
        if with_sectors
        else ""
    )
    written = await conn.fetch(
        f"""
        INSERT INTO instruments (symbol, exchange, name, instrument_type, lot_size, tick_size,
                                 expiry, active{sector_columns})
        SELECT t.symbol, t.exchange, t.name, t.instrument_type, t.lot_size, t.tick_size,
               t.expiry, true{sector_values}
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::numeric[],
                    $7::date[], $8::text[])
             AS t(symbol, exchange, name, instrument_type, lot_size, tick_size, expiry, sector)
        ON CONFLICT (symbol) DO UPDATE SET
            exchange = EXCLUDED.exchange, name = EXCLUDED.name,
            instrument_type = EXCLUDED.instrument_type, lot_size = EXCLUDED.lot_size,
            tick_size = EXCLUDED.tick_size, expiry = EXCLUDED.expiry, active = true,
            updated_at = now(){sector_update}
        WHERE (instruments.exchange, instruments.name, instruments.instrument_type,
               instruments.lot_size, instruments.tick_size, instruments.expiry,
               instruments.active)
              IS DISTINCT FROM
              (EXCLUDED.exchange, EXCLUDED.name, EXCLUDED.instrument_type, EXCLUDED.lot_size,
               EXCLUDED.tick_size, EXCLUDED.expiry, true){sector_compare}
        RETURNING (xmax = 0) AS inserted
        """,  # the interpolated parts are fixed SQL fragments
        [i.canonical for i in instruments],
        [i.exchange.value for i in instruments],
        [i.name for i in instruments],
        [i.instrument_type for i in instruments],
        [i.lot_size for i in instruments],
        [i.tick_size for i in instruments],
        [i.expiry for i in instruments],
        [SECTOR_OF.get(i.symbol) if i.instrument_type == "EQ" else None for i in instruments],
    )
    return _counts(written, len(instruments))


async def _upsert_sim_mappings(conn: Connection, universe: Universe) -> StepCounts:
    """``instrument_providers`` rows of provider ``sim``: the simulator's tokens."""
    specs = universe.specs
    written = await conn.fetch(
        """
        INSERT INTO instrument_providers (instrument_id, provider, exchange, token)
        SELECT i.id, $1, t.exchange, t.token
        FROM unnest($2::text[], $3::text[], $4::text[]) AS t(symbol, exchange, token)
        JOIN instruments i ON i.symbol = t.symbol
        ON CONFLICT (instrument_id, provider) DO UPDATE SET
            exchange = EXCLUDED.exchange, token = EXCLUDED.token
        WHERE (instrument_providers.exchange, instrument_providers.token)
              IS DISTINCT FROM (EXCLUDED.exchange, EXCLUDED.token)
        RETURNING (xmax = 0) AS inserted
        """,
        SIM_PROVIDER,
        [s.symbol for s in specs],
        [s.instrument.exchange.value for s in specs],
        [s.token for s in specs],
    )
    return _counts(written, len(specs))


async def seed_reference_data(
    pool: asyncpg.Pool, settings: Settings, progress: SeedProgress | None = None
) -> SeedReport:
    """Load exchanges, sectors and the simulator's universe in one transaction."""
    universe = SimulatorAdapter.from_settings(settings).universe
    report = SeedReport()
    steps = 4
    done = 0

    def finished(step: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(step, done, steps)

    async with pool.acquire() as conn, conn.transaction():
        report.steps["exchanges"] = await _upsert_exchanges(conn)
        finished("exchanges")
        with_sectors = await _has_sectors(conn)
        if with_sectors:
            report.steps["sectors"] = await _upsert_sectors(conn)
        else:
            report.notes.append(
                "sectors skipped: the database has no sectors table (migration 0004)"
            )
        finished("sectors")
        report.steps["instruments"] = await _upsert_instruments(conn, universe, with_sectors)
        finished("instruments")
        report.steps["sim_mappings"] = await _upsert_sim_mappings(conn, universe)
        finished("sim_mappings")
    return report

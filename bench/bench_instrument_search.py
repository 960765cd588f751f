"""Instrument search latency on a 100,000-instrument table (``GET /api/instruments/search``).

A fresh migrated database gets 100k instruments: 20k equities with company-like names on NSE
and BSE and 80k futures and options on 400 underlyings (the shape of a broker master). Then
``QUERIES`` queries of each kind run one after another, and the p50 and p99 wall-clock latency
are reported:

* prefix: the first 3-5 letters of an equity symbol (``HINDA``);
* exact: a whole equity name part (``HINDALCO``);
* fuzzy: an equity name with two letters swapped (``HIDNALCO``), which only pg_trgm matches;
* fuzzy word: a common word of company names misspelt (``Tetxiles``): about 1,300 rows are
  similar enough, the worst case for the trigram index;
* the same prefix and fuzzy queries with ``fuzzy=False`` (what a database without pg_trgm
  gets: prefix plus a capped substring scan), as the reference.

Through the repository function (one ``AsyncSession``), and through HTTP in-process (httpx's
ASGI transport into the FastAPI router: routing, validation and JSON, no sockets). Wall-clock
time (this is I/O), so unlike the CPU-time benches a busy machine inflates it. Uses
``DATABASE_URL`` when set, otherwise starts an embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from bench import Result
from bench.bench_store import _database_url
from marketpulse.api.errors import install_error_handlers
from marketpulse.api.routes import instruments as instrument_routes
from marketpulse.config import Settings
from marketpulse.reference.search import search_instruments
from marketpulse.store.database import asyncpg_dsn, upgrade
from marketpulse.store.orm import create_engine, create_sessionmaker

ROWS = 100_000
EQUITIES = 20_000
UNDERLYINGS = 400
QUERIES = 100

_SYLLABLES = [
    "ka",
    "ra",
    "tan",
    "vi",
    "shi",
    "ma",
    "no",
    "lu",
    "dhi",
    "pre",
    "sun",
    "gro",
    "tex",
    "che",
    "ba",
    "jo",
    "in",
    "fo",
    "hin",
    "dal",
    "co",
    "rel",
    "ian",
    "ce",
]
_WORDS = [
    "Industries",
    "Textiles",
    "Chemicals",
    "Finance",
    "Motors",
    "Pharma",
    "Power",
    "Steel",
    "Cement",
    "Foods",
    "Bank",
    "Infra",
    "Energy",
    "Software",
    "Holdings",
]


def _universe(rng: random.Random) -> list[tuple[str, str, str, str, date | None]]:
    """(symbol, exchange, name, type, expiry) rows; symbols unique."""
    rows: list[tuple[str, str, str, str, date | None]] = []
    seen: set[str] = set()
    while len(rows) < EQUITIES:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).upper()
        if stem in seen:
            continue
        seen.add(stem)
        name = f"{stem.title()} {rng.choice(_WORDS)} Ltd"
        rows.append((f"{stem}.NSE", "NSE", name, "EQ", None))
        if len(rows) < EQUITIES and rng.random() < 0.5:
            rows.append((f"{stem}.BSE", "BSE", name, "EQ", None))
    underlyings = list(dict.fromkeys(s.partition(".")[0] for s, *_ in rows))[:UNDERLYINGS]
    first = date(2026, 11, 26)
    n = 0
    while len(rows) < ROWS:
        under = underlyings[n % UNDERLYINGS]
        expiry = first + timedelta(days=7 * ((n // UNDERLYINGS) % 12))
        code = f"{expiry:%d%b%y}".upper()
        k = n // (UNDERLYINGS * 12)
        if k == 0:
            rows.append((f"{under}{code}FUT.NFO", "NFO", f"{under} {code} future", "FUT", expiry))
        else:
            strike, right = 100 * (k // 2 + 1), ("CE", "PE")[k % 2]
            rows.append((f"{under}{code}{strike}{right}.NFO", "NFO", f"{under} {code} {strike} "
                         f"{right}", right, expiry))  # fmt: skip
        n += 1
    return rows


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


Run = Callable[[str], Awaitable[int]]


async def _latencies(run: Run, queries: list[str]) -> tuple[float, float, float]:
    """p50 and p99 in ns, and the mean number of hits."""
    await run(queries[0])  # warm up: plans, connections
    samples: list[float] = []
    hits = 0
    for q in queries:
        started = time.perf_counter_ns()
        hits += await run(q)
        samples.append(time.perf_counter_ns() - started)
    p50, p99 = _percentiles(samples)
    return p50, p99, hits / len(queries)


async def _bench(admin_url: str) -> list[Result]:
    rng = random.Random(9)
    rows = _universe(rng)
    equities = [r for r in rows if r[3] == "EQ"]
    stems = [r[0].partition(".")[0] for r in rng.sample(equities, QUERIES)]
    kinds = {
        "prefix": [s[: rng.randint(3, 5)] for s in stems],
        "exact": stems,
        "fuzzy": [_typo(s, rng) for s in stems],
        "fuzzy word": [_typo(r[2].split()[1], rng) for r in rng.sample(equities, QUERIES)],
    }
    name = f"mp_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{asyncpg_dsn(admin_url).rpartition('/')[0]}/{name}"
    out: list[Result] = []
    try:
        await upgrade(url)
        conn = await asyncpg.connect(url)
        await conn.copy_records_to_table(
            "instruments", records=rows,
            columns=["symbol", "exchange", "name", "instrument_type", "expiry"],
        )  # fmt: skip
        await conn.execute("ANALYZE instruments")
        await conn.close()
        engine = create_engine(url, pool_size=2)
        maker = create_sessionmaker(engine)
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(instrument_routes.router)
        app.state.sessionmaker = maker
        app.state.settings = Settings(database_url=url, auth_enabled=False)
        try:
            async with maker() as session, httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            ) as http:  # fmt: skip
                out += await _cases(session, http, kinds)
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return out


async def _cases(
    session: AsyncSession, http: httpx.AsyncClient, kinds: dict[str, list[str]]
) -> list[Result]:
    async def repo(q: str) -> int:
        hits = await search_instruments(session, q, limit=20)
        await session.rollback()  # each query in its own transaction, as per request
        return len(hits)

    async def fallback(q: str) -> int:
        hits = await search_instruments(session, q, limit=20, fuzzy=False)
        await session.rollback()
        return len(hits)

    async def over_http(q: str) -> int:
        response = await http.get("/api/instruments/search", params={"q": q, "limit": 20})
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    out: list[Result] = []
    references: dict[str, Result] = {}
    for label, run, kind_names in [
        ("no pg_trgm (fuzzy=False)", fallback, ("prefix", "fuzzy")),
        ("repository", repo, ("prefix", "exact", "fuzzy", "fuzzy word")),
        ("HTTP (ASGI)", over_http, ("prefix", "exact", "fuzzy")),
    ]:
        for kind in kind_names:
            p50, p99, hits = await _latencies(run, kinds[kind])
            for pct, ns in (("p50", p50), ("p99", p99)):
                row = Result(name=f"{kind} {pct}, {label}, {hits:.1f} hits/query",
                             ns_per_op=ns, ops_per_s=1e9 / ns)  # fmt: skip
                key = f"{kind} {pct}"
                if label.startswith("no pg_trgm"):
                    references[key] = row
                elif key in references:
                    row["reference"] = references[key]["name"]
                    row["ratio"] = references[key]["ns_per_op"] / ns
                out.append(row)
    return out


def run() -> list[Result]:
    with _database_url() as url:
        return asyncio.run(_bench(url))


if __name__ == "__main__":
    for row in run():
        ratio = f"  {row['ratio']:.2f}x of {row['reference']}" if "ratio" in row else ""
        print(f"{row['name']:<60} {row['ns_per_op'] / 1e6:>8.2f} ms{ratio}")

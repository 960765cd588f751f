"""Instrument search on real PostgreSQL: prefix, fuzzy (typos), ranking, filters, and the
prefix/substring fallback a database without pg_trgm gets."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from marketpulse.reference.search import prefix_range, search_instruments
from marketpulse.store.orm import create_engine, create_sessionmaker
from tests.integration.reference.conftest import MakeInstrument, assert_error

UNIVERSE = [
    ("RELIANCE.NSE", "Reliance Industries", "EQ"),
    ("RELIANCE.BSE", "Reliance Industries", "EQ"),
    ("RELINFRA.NSE", "Reliance Infrastructure", "EQ"),
    ("RELAXO.NSE", "Relaxo Footwears", "EQ"),
    ("INFY.NSE", "Infosys", "EQ"),
    ("HDFCBANK.NSE", "HDFC Bank", "EQ"),
    ("ICICIBANK.NSE", "ICICI Bank", "EQ"),
    ("TATAMOTORS.NSE", "Tata Motors", "EQ"),
    ("NIFTY29DEC26FUT.NFO", "NIFTY Dec 2026 future", "FUT"),
    ("M_M.NSE", "Mahindra & Mahindra", "EQ"),
]


@pytest.fixture
async def universe(make_instrument: MakeInstrument) -> None:
    for symbol, name, kind in UNIVERSE:
        extra = {"expiry": "2026-12-29"} if kind == "FUT" else {}
        await make_instrument(symbol, name=name, instrument_type=kind, **extra)


async def search(
    api: httpx.AsyncClient, q: str, **params: str | int | bool
) -> list[tuple[str, str]]:
    response = await api.get("/api/instruments/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["results"])
    return [(r["instrument"]["symbol"], r["match"]) for r in body["results"]]


@pytest.mark.usefixtures("universe")
async def test_exact_name_ranks_first_then_symbol_prefixes(api: httpx.AsyncClient) -> None:
    hits = await search(api, "reliance")
    assert hits[:2] == [("RELIANCE.BSE", "exact"), ("RELIANCE.NSE", "exact")]
    # Reliance Infrastructure matches by name prefix, after every symbol match.
    assert ("RELINFRA.NSE", "name_prefix") in hits
    prefix = await search(api, "REL")
    assert [s for s, m in prefix if m == "symbol_prefix"] == [
        "RELAXO.NSE",
        "RELIANCE.BSE",
        "RELIANCE.NSE",
        "RELINFRA.NSE",
    ]


@pytest.mark.usefixtures("universe")
async def test_name_prefix_and_fuzzy_typos_find_the_instrument(api: httpx.AsyncClient) -> None:
    assert (await search(api, "tata mo"))[0] == ("TATAMOTORS.NSE", "name_prefix")
    typo = await search(api, "relaince")
    assert typo[0][0] in ("RELIANCE.BSE", "RELIANCE.NSE") and typo[0][1] == "fuzzy"
    assert (await search(api, "infosis"))[0] == ("INFY.NSE", "fuzzy")
    assert (await search(api, "hdfc bnak"))[0] == ("HDFCBANK.NSE", "fuzzy")
    assert await search(api, "zzzzqqq") == []


@pytest.mark.usefixtures("universe")
async def test_filters_limit_and_like_metacharacters(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    assert await search(api, "reliance", exchange="BSE") == [("RELIANCE.BSE", "exact")]
    assert [s for s, _ in await search(api, "nifty", type="FUT")] == ["NIFTY29DEC26FUT.NFO"]
    assert len(await search(api, "re", limit=2)) == 2
    # '_' and '%' are literal: "M_" finds M_M, not every symbol with an M in second place.
    assert await search(api, "M_") == [("M_M.NSE", "symbol_prefix")]
    assert await search(api, "%") == []
    listed = (await api.get("/api/instruments", params={"exchange": "NSE", "limit": 1})).json()
    await api.delete(f"/api/instruments/{listed['items'][0]['id']}")  # HDFCBANK.NSE
    assert "HDFCBANK.NSE" not in [s for s, _ in await search(api, "hdfc")]
    assert "HDFCBANK.NSE" in [s for s, _ in await search(api, "hdfc", status="inactive")]
    assert "HDFCBANK.NSE" in [s for s, _ in await search(api, "hdfc", status="all")]
    assert_error(await api.get("/api/instruments/search", params={"q": "x", "status": "no"}), 422)
    assert_error(await api.get("/api/instruments/search", params={"q": ""}), 422)
    assert_error(await api.get("/api/instruments/search"), 422)


@pytest.mark.usefixtures("universe")
async def test_without_pg_trgm_search_falls_back_to_prefix_and_substring(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await pool.execute("DROP EXTENSION pg_trgm CASCADE")  # what a server without contrib has
    hits = await search(api, "reliance")
    assert hits[:2] == [("RELIANCE.BSE", "exact"), ("RELIANCE.NSE", "exact")]
    assert ("TATAMOTORS.NSE", "substring") in await search(api, "motors")
    assert await search(api, "relaince") == []  # typos need pg_trgm


def test_prefix_range_bounds_exactly_the_strings_with_the_prefix() -> None:
    low, high = prefix_range("M_M")
    assert (low, high) == ("M_M", "M_N")
    inside = ["M_M", "M_M.NSE", "M_MZZZ"]
    outside = ["M_L", "M_N", "M%M", "MAM"]
    assert all(low <= s < high for s in inside)
    assert not any(low <= s < high for s in outside)


@pytest.mark.usefixtures("universe")
async def test_fuzzy_search_leaves_the_session_planner_settings_as_they_were(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            hits = await search_instruments(session, "relaince")
            assert hits and hits[0].match == "fuzzy"
            setting = await session.scalar(text("SELECT current_setting('enable_seqscan')"))
            assert setting == "on"
    finally:
        await engine.dispose()

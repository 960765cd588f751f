"""Instrument-master sync on a real database: reports, collisions, removals, resolution."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from marketpulse.store.instruments import (
    InstrumentRecord,
    UnknownInstrumentError,
    resolve_instruments,
    sync_instruments,
)

RELIANCE = InstrumentRecord("RELIANCE.NSE", "NSE", "738561", "RELIANCE", "Reliance Industries")
INFY = InstrumentRecord("INFY.NSE", "NSE", "408065", "INFY", "Infosys")
NIFTY = InstrumentRecord("NIFTY50.NSE_INDEX", "NSE_INDEX", "256265", "NIFTY 50",
                         instrument_type="INDEX")  # fmt: skip
FUT = InstrumentRecord("NIFTY30DEC25FUT.NFO", "NFO", "13238786", "NIFTY25DECFUT",
                       instrument_type="FUT", lot_size=75, expiry=date(2025, 12, 30))  # fmt: skip


async def test_first_sync_adds_everything_and_a_resync_changes_nothing(pool: asyncpg.Pool) -> None:
    progress: list[tuple[int, int]] = []
    report = await sync_instruments(pool, "kite", [RELIANCE, INFY, NIFTY, FUT],
                                    lambda d, t: progress.append((d, t)))  # fmt: skip
    assert (report.added, report.changed, report.removed, report.collisions) == (4, 0, 0, [])
    assert progress[-1] == (4, 4)
    again = await sync_instruments(pool, "kite", [RELIANCE, INFY, NIFTY, FUT])
    assert (again.added, again.changed, again.unchanged, again.removed) == (0, 0, 4, 0)
    row = await pool.fetchrow("SELECT * FROM instruments WHERE symbol = 'NIFTY30DEC25FUT.NFO'")
    assert row is not None
    assert (row["lot_size"], row["expiry"], row["instrument_type"]) == (
        75, date(2025, 12, 30), "FUT"
    )  # fmt: skip


async def test_changes_and_removals_are_reported_and_removed_instruments_deactivated(
    pool: asyncpg.Pool,
) -> None:
    await sync_instruments(pool, "kite", [RELIANCE, INFY, FUT])
    renamed = InstrumentRecord("RELIANCE.NSE", "NSE", "738561", "RELIANCE", "Reliance Ind. Ltd")
    report = await sync_instruments(pool, "kite", [renamed, INFY])
    assert (report.added, report.changed, report.unchanged, report.removed) == (0, 1, 1, 1)
    active = await pool.fetchval(
        "SELECT active FROM instruments WHERE symbol = 'NIFTY30DEC25FUT.NFO'"
    )
    assert active is False


async def test_contradicting_rows_are_collisions_and_are_not_written(pool: asyncpg.Pool) -> None:
    clash_token = InstrumentRecord("RIL.NSE", "NSE", "738561", "RIL")  # RELIANCE's token
    clash_symbol = InstrumentRecord("INFY.NSE", "NSE", "999", "INFY")  # second INFY token
    report = await sync_instruments(pool, "kite", [RELIANCE, clash_token, INFY, clash_symbol,
                                                   NIFTY])  # fmt: skip
    assert report.added == 1
    assert sorted(report.collisions) == [
        "symbol INFY.NSE is listed under tokens NSE:408065, NSE:999",
        "token NSE:738561 is listed for RELIANCE.NSE, RIL.NSE",
    ]
    assert await pool.fetchval("SELECT count(*) FROM instrument_providers") == 1


async def test_the_same_token_may_mean_different_instruments_at_different_providers(
    pool: asyncpg.Pool,
) -> None:
    await sync_instruments(pool, "kite", [RELIANCE])
    await sync_instruments(pool, "angelone", [InstrumentRecord("RELIANCE.NSE", "NSE", "2885")])
    kite = await resolve_instruments(pool, "kite", ["RELIANCE.NSE"])
    angel = await resolve_instruments(pool, "angelone", ["NSE:RELIANCE"], mode="ltp")
    assert (kite[0].token, angel[0].token, angel[0].mode) == ("738561", "2885", "ltp")


async def test_resolution_accepts_symbols_and_tokens_and_names_every_unknown(
    pool: asyncpg.Pool,
) -> None:
    await sync_instruments(pool, "kite", [RELIANCE, INFY, NIFTY])
    got = await resolve_instruments(pool, "kite", ["^NSEI", "408065", "RELIANCE.NS"])
    assert [(t.symbol, t.token) for t in got] == [
        ("NIFTY50.NSE_INDEX", "256265"), ("INFY.NSE", "408065"), ("RELIANCE.NSE", "738561"),
    ]  # fmt: skip
    with pytest.raises(UnknownInstrumentError, match=r"TCS\.NSE, 123.*instruments sync"):
        await resolve_instruments(pool, "kite", ["TCS.NSE", "123", "INFY.NSE"])


async def test_an_exchange_missing_from_the_exchanges_table_is_reported(
    pool: asyncpg.Pool,
) -> None:
    odd = InstrumentRecord("GOLD.MCXSX", "MCXSX", "1", "GOLD")
    report = await sync_instruments(pool, "kite", [odd, RELIANCE])
    assert report.added == 1
    assert report.collisions == ["GOLD.MCXSX: exchange MCXSX is not in the exchanges table"]

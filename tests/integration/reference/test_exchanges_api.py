"""Exchanges over REST on real PostgreSQL: CRUD, validation, holidays and special sessions."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.reference.conftest import MakeInstrument, assert_error

XETRA: dict[str, Any] = {
    "code": "XETRA",
    "name": "Deutsche Boerse Xetra",
    "timezone": "Europe/Berlin",
    "country": "DE",
    "currency": "EUR",
    "session_open": "09:00:00",
    "session_close": "17:30:00",
    "pre_open": "08:00:00",
    "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"],
}


async def test_exchange_crud_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/exchanges", json=XETRA)
    assert created.status_code == 201, created.text
    assert created.json()["holidays"] == ["2026-12-24", "2026-12-25"]
    listed = [e["code"] for e in (await api.get("/api/exchanges")).json()]
    assert "XETRA" in listed and "NSE" in listed
    patched = await api.patch("/api/exchanges/XETRA", json={"name": "Xetra", "pre_open": None})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["pre_open"]) == ("Xetra", None)
    got = (await api.get("/api/exchanges/XETRA")).json()
    assert got["timezone"] == "Europe/Berlin" and got["session_close"] == "17:30:00"
    assert (await api.delete("/api/exchanges/XETRA")).status_code == 204
    assert_error(await api.get("/api/exchanges/XETRA"), 404, "XETRA")


async def test_invalid_exchanges_are_422_with_the_reason(api: httpx.AsyncClient) -> None:
    assert_error(
        await api.post("/api/exchanges", json={**XETRA, "timezone": "Europe/Atlantis"}),
        422,
        "not an IANA timezone",
    )
    assert_error(
        await api.post("/api/exchanges", json={**XETRA, "session_open": "18:00:00"}),
        422,
        "must be before session_close",
    )
    assert_error(await api.post("/api/exchanges", json={**XETRA, "code": "x-1"}), 422, "pattern")
    overnight = {**XETRA, "code": "CME", "session_open": "18:00:00", "session_close": "17:00:00"}
    assert_error(await api.post("/api/exchanges", json=overnight), 422, "is_24h")
    assert (await api.post("/api/exchanges", json={**overnight, "is_24h": True})).status_code == 201
    # A PATCH is checked against the stored values: closing before the stored open is refused.
    assert_error(
        await api.patch("/api/exchanges/NSE", json={"session_close": "09:00:00"}),
        422,
        "must be before session_close",
    )
    assert_error(await api.patch("/api/exchanges/NSE", json={"name": None}), 422, "cannot be null")
    assert_error(
        await api.patch("/api/exchanges/NSE", json={"timezone": "Mars/Olympus"}), 422, "IANA"
    )


async def test_duplicates_are_409_and_unknown_codes_404(api: httpx.AsyncClient) -> None:
    assert_error(
        await api.post("/api/exchanges", json={**XETRA, "code": "NSE"}),
        409,
        "'NSE' already exists",
        "National Stock Exchange of India",
    )
    assert_error(await api.patch("/api/exchanges/NOPE", json={"name": "x"}), 404, "NOPE")
    assert_error(await api.delete("/api/exchanges/NOPE"), 404, "NOPE")


async def test_an_exchange_with_instruments_cannot_be_deleted(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    await make_instrument("RELIANCE.NSE")
    assert_error(await api.delete("/api/exchanges/NSE"), 409, "NSE", "1 instruments")


async def test_holiday_calendar_add_list_by_year_and_remove(api: httpx.AsyncClient) -> None:
    added = await api.post(
        "/api/exchanges/NSE/holidays", json={"dates": ["2026-11-09", "2027-01-26", "2026-11-09"]}
    )
    assert added.status_code == 200, added.text
    assert added.json() == {"exchange": "NSE", "dates": ["2026-11-09", "2027-01-26"]}
    in_2026 = await api.get("/api/exchanges/NSE/holidays", params={"year": 2026})
    assert in_2026.json()["dates"] == ["2026-11-09"]
    assert (await api.delete("/api/exchanges/NSE/holidays/2026-11-09")).status_code == 204
    assert (await api.get("/api/exchanges/NSE/holidays")).json()["dates"] == ["2027-01-26"]
    assert_error(
        await api.delete("/api/exchanges/NSE/holidays/2026-11-09"),
        404,
        "2026-11-09 is not a holiday of NSE",
    )
    assert_error(await api.post("/api/exchanges/NSE/holidays", json={"dates": ["2026-13-01"]}), 422)
    assert_error(await api.get("/api/exchanges/NOPE/holidays"), 404)


async def test_special_sessions_add_list_conflict_and_remove(api: httpx.AsyncClient) -> None:
    muhurat = {
        "session_date": "2026-11-08",
        "session_open": "18:00:00",
        "session_close": "19:15:00",
        "description": "Muhurat trading",
    }
    created = await api.post("/api/exchanges/NSE/special-sessions", json=muhurat)
    assert created.status_code == 201, created.text
    assert created.json() == {"exchange": "NSE", **muhurat}
    assert_error(
        await api.post("/api/exchanges/NSE/special-sessions", json=muhurat),
        409,
        "already has a special session on 2026-11-08",
        "Muhurat trading",
    )
    backwards = {**muhurat, "session_date": "2026-11-10", "session_open": "20:00:00"}
    assert_error(
        await api.post("/api/exchanges/NSE/special-sessions", json=backwards),
        422,
        "must be before session_close",
    )
    listed = await api.get("/api/exchanges/NSE/special-sessions", params={"year": 2026})
    assert [s["session_date"] for s in listed.json()] == ["2026-11-08"]
    assert (
        await api.get("/api/exchanges/NSE/special-sessions", params={"year": 2025})
    ).json() == []
    assert (await api.delete("/api/exchanges/NSE/special-sessions/2026-11-08")).status_code == 204
    assert_error(await api.delete("/api/exchanges/NSE/special-sessions/2026-11-08"), 404)


async def test_session_times_with_a_utc_offset_are_422_not_a_database_error(
    api: httpx.AsyncClient,
) -> None:
    # Found by the OpenAPI fuzzer: 13:00Z < 00:13-13:00 as aware times, but PostgreSQL's `time`
    # drops the offsets and the CHECK (open < close) failed with a 500.
    fuzzed = {"session_date": "2000-01-01", "session_open": "13:00:00Z",
              "session_close": "00:13:00-13:00"}  # fmt: skip
    assert_error(
        await api.post("/api/exchanges/NSE/special-sessions", json=fuzzed), 422, "UTC offset"
    )
    mixed = {"session_open": "09:15:00+05:30", "session_close": "15:30:00"}
    assert_error(await api.patch("/api/exchanges/NSE", json=mixed), 422, "UTC offset")

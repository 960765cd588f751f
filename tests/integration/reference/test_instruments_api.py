"""Instruments over REST on real PostgreSQL: CRUD, lookups, filters, pagination, provider
mappings with their uniqueness rules, sector assignment, and the routes it must not capture."""

from __future__ import annotations

import httpx

from tests.integration.reference.conftest import MakeInstrument, assert_error


async def test_create_read_update_and_deactivate(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    made = await make_instrument("nse:reliance", name="Reliance Industries", isin="INE002A01018")
    assert (made["symbol"], made["exchange"], made["instrument_type"]) == (
        "RELIANCE.NSE",
        "NSE",
        "EQ",
    )
    assert (made["lot_size"], made["tick_size"], made["active"]) == (1, 0.05, True)
    by_id = (await api.get(f"/api/instruments/{made['id']}")).json()
    by_symbol = (await api.get("/api/instruments/by-symbol/RELIANCE.NSE")).json()
    assert by_id == by_symbol == made
    patched = await api.patch(
        f"/api/instruments/{made['id']}", json={"lot_size": 10, "tick_size": 0.1, "name": None}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["lot_size"], patched.json()["tick_size"], patched.json()["name"]) == (
        10,
        0.1,
        None,
    )
    gone = await api.delete(f"/api/instruments/{made['id']}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert (await api.get(f"/api/instruments/{made['id']}")).json()["active"] is False


async def test_futures_and_options_carry_expiry_and_strike(make_instrument: MakeInstrument) -> None:
    option = await make_instrument(
        "NIFTY29DEC2624500CE.NFO",
        instrument_type="ce",
        lot_size=75,
        expiry="2026-12-29",
        strike=24500,
    )
    assert (option["instrument_type"], option["expiry"], option["strike"]) == (
        "CE",
        "2026-12-29",
        24500.0,
    )


async def test_validation_conflicts_and_unknowns(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    first = await make_instrument("INFY.NSE")
    assert_error(
        await api.post("/api/instruments", json={"symbol": "NSE:INFY"}),
        409,
        "INFY.NSE already exists",
        f"id {first['id']}",
    )
    assert_error(
        await api.post("/api/instruments", json={"symbol": "ACME.XETRA"}),
        422,
        "exchange 'XETRA' does not exist",
    )
    assert_error(
        await api.post("/api/instruments", json={"symbol": "INFY"}), 422, "has no exchange"
    )
    assert_error(
        await api.post("/api/instruments", json={"symbol": "TCS.NSE", "exchange": "BSE"}),
        422,
        "TCS.NSE is on NSE, not BSE",
    )
    assert_error(await api.post("/api/instruments", json={"symbol": "TCS.NSE", "lot_size": 0}), 422)
    assert_error(
        await api.post("/api/instruments", json={"symbol": "TCS.NSE", "sector_id": 99}),
        422,
        "sector 99 does not exist",
    )
    assert_error(
        await api.post("/api/instruments", json={"symbol": "TCS.NSE", "name": "bad\u0000name"}), 422
    )
    assert_error(
        await api.patch(f"/api/instruments/{first['id']}", json={"active": None}),
        422,
        "active cannot be null",
    )
    assert_error(await api.get("/api/instruments/999999"), 404, "no instrument with id 999999")
    assert_error(await api.get("/api/instruments/by-symbol/NOPE.NSE"), 404, "NOPE.NSE")
    assert_error(await api.get("/api/instruments/by-symbol/NOPE"), 422, "has no exchange")
    assert_error(await api.patch("/api/instruments/999999", json={"lot_size": 2}), 404)
    assert_error(await api.delete("/api/instruments/999999"), 404)


async def test_literal_paths_of_other_routes_are_not_taken_for_ids(api: httpx.AsyncClient) -> None:
    # Only integers reach /api/instruments/{id}; anything else is someone else's path or 404.
    for path in (
        "/api/instruments/subscribe",
        "/api/instruments/unsubscribe",
        "/api/instruments/abc",
    ):
        response = await api.get(path)
        assert response.status_code in (404, 405), (path, response.text)
    assert (await api.get("/api/instruments/-1")).status_code in (404, 422)


async def test_list_filters_and_pagination(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    for name in ("AXISBANK", "HDFCBANK", "ICICIBANK", "INFY", "TCS"):
        await make_instrument(f"{name}.NSE")
    await make_instrument("HDFCBANK.BSE")
    fut = await make_instrument(
        "NIFTY29DEC26FUT.NFO", instrument_type="FUT", expiry="2026-12-29", lot_size=75
    )
    await make_instrument("NIFTY26JAN27FUT.NFO", instrument_type="FUT", expiry="2027-01-26")
    sector = (await api.post("/api/sectors", json={"name": "Banking"})).json()
    nse = (await api.get("/api/instruments", params={"exchange": "NSE"})).json()
    banks = [i["id"] for i in nse["items"] if i["symbol"].endswith("BANK.NSE")]
    assigned = await api.post(
        f"/api/sectors/{sector['id']}/instruments", json={"instrument_ids": banks}
    )
    assert assigned.json() == {"sector_id": sector["id"], "assigned": 3, "instruments": 3}
    await api.delete(f"/api/instruments/{nse['items'][-1]['id']}")  # TCS.NSE inactive

    async def symbols(**params: str | int | bool) -> list[str]:
        body = (await api.get("/api/instruments", params=params)).json()
        return [i["symbol"] for i in body["items"]]

    assert await symbols(exchange="NSE", limit=2) == ["AXISBANK.NSE", "HDFCBANK.NSE"]
    page = (
        await api.get("/api/instruments", params={"exchange": "NSE", "limit": 2, "offset": 2})
    ).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [i["symbol"] for i in page["items"]] == ["ICICIBANK.NSE", "INFY.NSE"]
    assert await symbols(type="fut") == ["NIFTY26JAN27FUT.NFO", "NIFTY29DEC26FUT.NFO"]
    assert await symbols(expiry="2026-12-29") == [fut["symbol"]]
    assert await symbols(expiry_from="2027-01-01") == ["NIFTY26JAN27FUT.NFO"]
    assert await symbols(sector="banking") == ["AXISBANK.NSE", "HDFCBANK.NSE", "ICICIBANK.NSE"]
    assert await symbols(sector_id=sector["id"], limit=1) == ["AXISBANK.NSE"]
    assert await symbols(exchange="NSE", active=False) == ["TCS.NSE"]
    assert_error(await api.get("/api/instruments", params={"limit": 0}), 422)
    assert_error(await api.get("/api/instruments", params={"exchange": "n$e"}), 422)


async def test_provider_mappings_enforce_both_uniqueness_rules(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    reliance = await make_instrument("RELIANCE.NSE")
    infy = await make_instrument("INFY.NSE")
    url = f"/api/instruments/{reliance['id']}/providers"
    added = await api.post(
        url, json={"provider": "kite", "token": "738561", "broker_symbol": "RELIANCE"}
    )
    assert added.status_code == 201, added.text
    assert added.json() == {
        "instrument_id": reliance["id"],
        "provider": "kite",
        "exchange": "NSE",
        "token": "738561",
        "broker_symbol": "RELIANCE",
    }
    assert_error(
        await api.post(url, json={"provider": "kite", "token": "1"}),
        409,
        "RELIANCE.NSE already has a kite mapping",
        "NSE:738561",
    )
    assert_error(
        await api.post(
            f"/api/instruments/{infy['id']}/providers", json={"provider": "kite", "token": "738561"}
        ),
        409,
        "kite token NSE:738561 is already mapped to RELIANCE.NSE",
    )
    # The same token on another exchange, or for another provider, is a different key.
    other = await api.post(
        f"/api/instruments/{infy['id']}/providers",
        json={"provider": "kite", "token": "738561", "exchange": "BSE"},
    )
    assert other.status_code == 201, other.text
    await api.post(url, json={"provider": "dhan", "token": "2885"})
    assert [m["provider"] for m in (await api.get(url)).json()] == ["dhan", "kite"]

    looked_up = await api.get(
        "/api/instruments/by-token",
        params={"provider": "kite", "token": "738561", "exchange": "NSE"},
    )
    assert looked_up.json()["instrument"]["symbol"] == "RELIANCE.NSE"
    assert_error(
        await api.get("/api/instruments/by-token", params={"provider": "kite", "token": "738561"}),
        422,
        "listed on several exchanges",
        "RELIANCE.NSE",
        "INFY.NSE",
    )
    assert_error(
        await api.get("/api/instruments/by-token", params={"provider": "kite", "token": "1"}), 404
    )

    assert_error(
        await api.patch(f"/api/instruments/{infy['id']}/providers/kite", json={"exchange": "NSE"}),
        409,
        "already mapped to RELIANCE.NSE",
    )
    moved = await api.patch(f"{url}/kite", json={"token": "999", "broker_symbol": None})
    assert (moved.json()["token"], moved.json()["broker_symbol"]) == ("999", None)
    assert (await api.delete(f"{url}/kite")).status_code == 204
    assert_error(await api.delete(f"{url}/kite"), 404, "no kite mapping")
    assert_error(await api.get("/api/instruments/999999/providers"), 404)
    assert_error(await api.post(url, json={"provider": "Kite!", "token": "1"}), 422)


async def test_sector_assignment_per_instrument(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    made = await make_instrument("SBIN.NSE")
    sector = (await api.post("/api/sectors", json={"name": "PSU Banks"})).json()
    url = f"/api/instruments/{made['id']}/sector"
    assert (await api.put(url, json={"sector_id": sector["id"]})).json()["sector_id"] == sector[
        "id"
    ]
    assert (await api.get(f"/api/sectors/{sector['id']}")).json()["instruments"] == 1
    assert (await api.put(url, json={"sector_id": None})).json()["sector_id"] is None
    assert_error(await api.put(url, json={"sector_id": 424242}), 422, "sector 424242")

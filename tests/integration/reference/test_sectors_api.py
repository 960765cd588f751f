"""Sectors over REST on real PostgreSQL: CRUD, case-insensitive uniqueness, assignment."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.integration.reference.conftest import MakeInstrument, assert_error


async def test_sector_crud_and_counts(
    api: httpx.AsyncClient, make_instrument: MakeInstrument, pool: asyncpg.Pool
) -> None:
    created = await api.post("/api/sectors", json={"name": "IT", "description": "Software"})
    assert created.status_code == 201, created.text
    sector = created.json()
    assert (sector["name"], sector["description"], sector["instruments"]) == ("IT", "Software", 0)
    infy = await make_instrument("INFY.NSE")
    await api.post(
        f"/api/sectors/{sector['id']}/instruments", json={"instrument_ids": [infy["id"]]}
    )
    await api.post("/api/sectors", json={"name": "Energy"})
    listed = (await api.get("/api/sectors")).json()
    assert [(s["name"], s["instruments"]) for s in listed] == [("Energy", 0), ("IT", 1)]
    renamed = await api.patch(
        f"/api/sectors/{sector['id']}", json={"name": "Information Technology", "description": None}
    )
    assert (renamed.json()["name"], renamed.json()["description"]) == (
        "Information Technology",
        None,
    )
    assert (await api.delete(f"/api/sectors/{sector['id']}")).status_code == 204
    # ON DELETE SET NULL: the instrument stays, unassigned.
    assert (
        await pool.fetchval("SELECT sector_id FROM instruments WHERE id = $1", infy["id"]) is None
    )
    assert_error(await api.get(f"/api/sectors/{sector['id']}"), 404)


async def test_sector_validation_and_conflicts(
    api: httpx.AsyncClient, make_instrument: MakeInstrument
) -> None:
    banking = (await api.post("/api/sectors", json={"name": "Banking"})).json()
    assert_error(
        await api.post("/api/sectors", json={"name": "banking"}),
        409,
        "'Banking' already exists",
        f"id {banking['id']}",
    )
    other = (await api.post("/api/sectors", json={"name": "Pharma"})).json()
    assert_error(await api.patch(f"/api/sectors/{other['id']}", json={"name": "BANKING"}), 409)
    assert_error(
        await api.patch(f"/api/sectors/{other['id']}", json={"name": None}),
        422,
        "name cannot be null",
    )
    assert_error(await api.post("/api/sectors", json={"name": ""}), 422)
    assert_error(await api.patch("/api/sectors/999", json={"name": "x"}), 404)
    assert_error(await api.delete("/api/sectors/999"), 404)
    infy = await make_instrument("INFY.NSE")
    assert_error(
        await api.post(
            f"/api/sectors/{banking['id']}/instruments", json={"instrument_ids": [infy["id"], 777]}
        ),
        404,
        "no instruments with ids 777",
    )
    # Nothing was assigned by the refused request.
    assert (await api.get(f"/api/sectors/{banking['id']}")).json()["instruments"] == 0
    assert_error(
        await api.post("/api/sectors/999/instruments", json={"instrument_ids": [infy["id"]]}), 404
    )
    assert_error(
        await api.post(f"/api/sectors/{banking['id']}/instruments", json={"instrument_ids": []}),
        422,
    )


async def test_concurrent_creates_of_one_sector_give_one_201_and_409s_never_a_500(
    api: httpx.AsyncClient,
) -> None:
    # Every request passes the route's duplicate check before any has inserted; the unique
    # constraint decides, and the API's constraint handler answers 409 for the losers.
    responses = await asyncio.gather(
        *(api.post("/api/sectors", json={"name": "Race Sector"}) for _ in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, [r.text for r in responses]
    assert set(statuses) <= {201, 409}
    for response in responses:
        if response.status_code == 409:
            assert response.json()["status_code"] == 409

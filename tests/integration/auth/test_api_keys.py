"""API keys: created once, usable as Bearer or X-API-Key with the owner's role, revocable."""

from __future__ import annotations

import httpx

from tests.integration.auth.conftest import MakeUser, bearer, login


async def test_api_key_create_use_list_and_revoke(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("keyholder")
    session = bearer((await login(http, "keyholder"))["access_token"])
    created = await http.post("/auth/api-keys", json={"name": "dashboard"}, headers=session)
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(body["prefix"]) and len(key) > 40

    for headers in (bearer(key), {"X-API-Key": key}):
        me = await http.get("/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["username"] == "keyholder" and me.json()["via"] == "api_key"
        assert (await http.get("/symbols", headers=headers)).status_code == 200

    listed = await http.get("/auth/api-keys", headers=session)
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["id"] == body["id"] and entry["prefix"] == body["prefix"]
    assert "key" not in entry and key not in listed.text
    assert entry["last_used_at"] is not None

    revoked = await http.delete(f"/auth/api-keys/{body['id']}", headers=session)
    assert revoked.status_code == 204
    for headers in (bearer(key), {"X-API-Key": key}):
        refused = await http.get("/auth/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"detail": "invalid or revoked API key", "status_code": 401}
    assert (await http.get("/auth/api-keys", headers=session)).json() == []
    again = await http.delete(f"/auth/api-keys/{body['id']}", headers=session)
    assert again.status_code == 404 and again.json()["status_code"] == 404


async def test_an_api_key_acts_with_its_owners_role(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("admin1", role="admin")
    await make_user("reader")
    admin_key = (
        await http.post(
            "/auth/api-keys",
            json={"name": "ops"},
            headers=bearer((await login(http, "admin1"))["access_token"]),
        )
    ).json()["key"]
    user_key = (
        await http.post(
            "/auth/api-keys",
            json={"name": "app"},
            headers=bearer((await login(http, "reader"))["access_token"]),
        )
    ).json()["key"]
    new_user = {"username": "made-by-key", "password": "long-enough-pw"}
    by_user = await http.post("/auth/register", json=new_user, headers={"X-API-Key": user_key})
    assert by_user.status_code == 403
    by_admin = await http.post("/auth/register", json=new_user, headers={"X-API-Key": admin_key})
    assert by_admin.status_code == 201
    # keys cannot mint more keys
    minted = await http.post("/auth/api-keys", json={"name": "x"}, headers=bearer(user_key))
    assert minted.status_code == 403


async def test_a_user_cannot_revoke_someone_elses_key_but_an_admin_can(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("owner")
    await make_user("stranger")
    await make_user("boss", role="admin")
    owner = bearer((await login(http, "owner"))["access_token"])
    key_id = (await http.post("/auth/api-keys", json={"name": "k"}, headers=owner)).json()["id"]
    stranger = bearer((await login(http, "stranger"))["access_token"])
    assert (await http.delete(f"/auth/api-keys/{key_id}", headers=stranger)).status_code == 404
    boss = bearer((await login(http, "boss"))["access_token"])
    assert (await http.delete(f"/auth/api-keys/{key_id}", headers=boss)).status_code == 204
    bad_id = await http.delete("/auth/api-keys/not-a-number", headers=owner)
    assert bad_id.status_code == 422

"""Password login, the access token, refresh rotation, logout and registration."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from marketpulse.config import Settings
from tests.integration.auth.conftest import PASSWORD, MakeUser, bearer, login


async def test_login_with_json_and_with_the_oauth2_form_returns_tokens_for_me(
    http: httpx.AsyncClient, make_user: MakeUser, auth_settings: Settings
) -> None:
    await make_user("alice")
    by_json = await http.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    by_form = await http.post(
        "/auth/login", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    )
    assert by_json.status_code == by_form.status_code == 200
    for body in (by_json.json(), by_form.json()):
        assert body["token_type"] == "bearer" and body["refresh_token"]
        assert body["expires_in"] == auth_settings.jwt_access_ttl_seconds
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert {"sub", "role", "exp", "iat", "jti", "type"} <= claims.keys()
        assert claims["type"] == "access" and claims["role"] == "user"
        me = await http.get("/auth/me", headers=bearer(body["access_token"]))
        assert me.status_code == 200
        assert me.json()["username"] == "alice" and me.json()["via"] == "jwt"


async def test_wrong_password_and_unknown_user_are_401_with_www_authenticate(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("bob")
    wrong = await http.post("/auth/login", json={"username": "bob", "password": "nope-nope"})
    unknown = await http.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "incorrect username or password", "status_code": 401}


async def test_login_without_credentials_in_a_body_is_422(http: httpx.AsyncClient) -> None:
    missing = await http.post("/auth/login", json={"username": "x"})
    not_json = await http.post(
        "/auth/login", content=b"{", headers={"content-type": "application/json"}
    )
    plain = await http.post("/auth/login", content=b"hello")
    for response in (missing, not_json, plain):
        assert response.status_code == 422
        assert response.json()["status_code"] == 422


async def test_me_without_or_with_a_garbage_token_is_401(http: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("not-a-token"), bearer("a.b.c")):
        response = await http.get("/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status_code"] == 401


async def test_expired_or_foreign_access_tokens_are_refused(
    http: httpx.AsyncClient, make_user: MakeUser, auth_settings: Settings
) -> None:
    user = await make_user("carol")
    now = int(time.time())
    claims = {"sub": str(user.id), "name": "carol", "role": "user", "iat": now - 100,
              "exp": now - 10, "jti": "x1", "type": "access", "iss": "marketpulse"}  # fmt: skip
    secret = auth_settings.jwt_secret.get_secret_value()
    expired = jwt.encode(claims, secret, algorithm="HS256")
    forged = jwt.encode({**claims, "exp": now + 600, "role": "admin"}, "another-secret-" * 3)
    refresh_as_access = jwt.encode({**claims, "exp": now + 600, "type": "refresh"}, secret)
    valid = jwt.encode({**claims, "exp": now + 600}, secret, algorithm="HS256")
    answers = {}
    for name, token in [("expired", expired), ("forged", forged), ("type", refresh_as_access),
                        ("valid", valid)]:  # fmt: skip
        answers[name] = await http.get("/auth/me", headers=bearer(token))
    assert answers["valid"].status_code == 200
    assert answers["expired"].status_code == 401
    assert answers["expired"].json()["detail"] == "access token expired"
    assert answers["forged"].status_code == 401
    assert answers["type"].status_code == 401


async def test_short_access_lifetime_expires_the_token(
    auth_settings: Settings, make_user: MakeUser
) -> None:
    from marketpulse.api.app import create_app

    app = create_app(auth_settings.model_copy(update={"jwt_access_ttl_seconds": 2}))
    await make_user("dave")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        tokens = await login(http, "dave")
        assert (await http.get("/auth/me", headers=bearer(tokens["access_token"]))).is_success
        await asyncio.sleep(3.1)
        late = await http.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert late.status_code == 401 and late.json()["detail"] == "access token expired"
        # the refresh token still gets a new, working access token
        renewed = await http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200
        me = await http.get("/auth/me", headers=bearer(renewed.json()["access_token"]))
        assert me.status_code == 200


async def test_refresh_rotates_and_reusing_a_spent_token_revokes_the_whole_login(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("erin")
    first = await login(http, "erin")
    second = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    reused = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    # the theft response: the successor issued from the reused token is dead as well
    successor = await http.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert successor.status_code == 401
    unknown = await http.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert unknown.status_code == 401


async def test_logout_revokes_the_access_token_and_the_refresh_token(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("frank")
    tokens = await login(http, "frank")
    other = await login(http, "frank")  # a second session stays valid
    out = await http.post(
        "/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert out.status_code == 200
    assert out.json() == {"access_token_revoked": True, "refresh_token_revoked": True}
    after = await http.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert after.status_code == 401 and after.json()["detail"] == "access token revoked"
    refresh = await http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert (await http.get("/auth/me", headers=bearer(other["access_token"]))).status_code == 200


async def test_register_is_admin_only_and_refuses_a_duplicate_username(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("root", role="admin")
    await make_user("gina")
    admin = await login(http, "root")
    user = await login(http, "gina")
    body = {"username": "henry", "password": "long-enough-pw", "role": "user"}
    assert (await http.post("/auth/register", json=body)).status_code == 401
    as_user = await http.post("/auth/register", json=body, headers=bearer(user["access_token"]))
    assert as_user.status_code == 403
    assert as_user.json() == {"detail": "this needs the admin role", "status_code": 403}
    created = await http.post("/auth/register", json=body, headers=bearer(admin["access_token"]))
    assert created.status_code == 201
    assert created.json()["username"] == "henry" and created.json()["role"] == "user"
    again = await http.post(
        "/auth/register", json={**body, "username": "HENRY"}, headers=bearer(admin["access_token"])
    )
    assert again.status_code == 409 and again.json()["status_code"] == 409
    bad = await http.post(
        "/auth/register",
        json={"username": "x", "password": "short"},
        headers=bearer(admin["access_token"]),
    )
    assert bad.status_code == 422
    assert (await login(http, "henry", "long-enough-pw"))["role"] == "user"
    listed = await http.get("/auth/users", headers=bearer(admin["access_token"]))
    assert {u["username"] for u in listed.json()} == {"root", "gina", "henry"}


async def test_a_role_user_token_is_403_on_admin_routes_and_200_on_reads(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("ivan")
    token = (await login(http, "ivan"))["access_token"]
    sub = await http.post("/subscribe", json={"symbols": ["TCS.NSE"]}, headers=bearer(token))
    assert sub.status_code == 403
    backfill = await http.post("/api/historical/backfill", json={}, headers=bearer(token))
    assert backfill.status_code == 403
    symbols = await http.get("/symbols", headers=bearer(token))
    assert symbols.status_code == 200
    assert (await http.get("/symbols")).status_code == 401


async def test_register_is_refused_while_no_admin_exists_even_with_auth_off(
    settings: Settings, make_user: MakeUser
) -> None:
    from marketpulse.api.app import create_app

    app = create_app(settings)  # AUTH_ENABLED=false: the caller is the anonymous admin
    body = {"username": "early", "password": "long-enough-pw"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        refused = await http.post("/auth/register", json=body)
        assert refused.status_code == 403
        assert "marketpulse users create --admin" in refused.json()["detail"]
        await make_user("first", role="admin")
        assert (await http.post("/auth/register", json=body)).status_code == 201
        me = await http.get("/auth/me")
        assert me.json() == {"id": None, "username": "anonymous", "role": "admin",
                             "via": "anonymous", "email": None, "active": True,
                             "created_at": None}  # fmt: skip
        keys = await http.post("/auth/api-keys", json={"name": "k"})
        assert keys.status_code == 400

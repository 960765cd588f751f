"""``marketpulse users``: the first admin, listing, deactivation and key generation."""

from __future__ import annotations

import httpx
from cryptography.fernet import Fernet

from tests.integration.auth.conftest import bearer, login
from tests.integration.kite.helpers import invoke_cli


async def test_users_create_admin_then_login_list_and_deactivate(
    database_url: str, http: httpx.AsyncClient
) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": database_url, "MARKETPULSE_PASSWORD": None}
    created = await invoke_cli(
        ["users", "create", "chief", "--admin"], env, input="first-admin-pw\nfirst-admin-pw\n"
    )
    assert created.exit_code == 0, created.output
    assert "created admin chief" in created.output
    assert "first-admin-pw" not in created.output
    tokens = await login(http, "chief", "first-admin-pw")
    assert tokens["role"] == "admin"
    # the first admin can now register users over the API
    made = await http.post(
        "/auth/register",
        json={"username": "worker", "password": "worker-pass-1"},
        headers=bearer(tokens["access_token"]),
    )
    assert made.status_code == 201

    duplicate = await invoke_cli(["users", "create", "CHIEF", "--password", "another-pass"], env)
    assert duplicate.exit_code == 1 and "taken" in duplicate.output
    short = await invoke_cli(["users", "create", "shorty", "--password", "short"], env)
    assert short.exit_code == 1 and "at least 8" in short.output

    listed = await invoke_cli(["users", "list"], env)
    assert listed.exit_code == 0 and "chief" in listed.output and "worker" in listed.output

    worker = await login(http, "worker", "worker-pass-1")
    key = (
        await http.post(
            "/auth/api-keys", json={"name": "w"}, headers=bearer(worker["access_token"])
        )
    ).json()["key"]
    assert (await http.get("/auth/me", headers={"X-API-Key": key})).status_code == 200
    off = await invoke_cli(["users", "deactivate", "worker"], env)
    assert off.exit_code == 0, off.output
    assert (await http.get("/auth/me", headers={"X-API-Key": key})).status_code == 401
    refused = await http.post(
        "/auth/login", json={"username": "worker", "password": "worker-pass-1"}
    )
    assert refused.status_code == 401
    spent = await http.post("/auth/refresh", json={"refresh_token": worker["refresh_token"]})
    assert spent.status_code == 401
    on = await invoke_cli(["users", "deactivate", "worker", "--activate"], env)
    assert on.exit_code == 0
    assert (await login(http, "worker", "worker-pass-1"))["role"] == "user"
    assert (await http.get("/auth/me", headers={"X-API-Key": key})).status_code == 200
    missing = await invoke_cli(["users", "deactivate", "nobody"], env)
    assert missing.exit_code == 1


async def test_users_generate_key_prints_a_fernet_key() -> None:
    result = await invoke_cli(["users", "generate-key"], {})
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"

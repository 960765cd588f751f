"""Per-account lockout after repeated wrong passwords, and the per-address login rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.config import Settings
from tests.integration.auth.conftest import PASSWORD, MakeUser


@pytest.fixture
async def limited(auth_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = auth_settings.model_copy(update={
        "login_max_attempts": 3, "login_lockout_seconds": 2.0,
        "login_rate_limit": 6, "login_rate_window_seconds": 30,
    })  # fmt: skip
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_account_locks_after_max_failures_and_unlocks_after_the_lockout(
    limited: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("victim")
    wrong = {"username": "victim", "password": "guess-guess"}
    assert (await limited.post("/auth/login", json=wrong)).status_code == 401
    assert (await limited.post("/auth/login", json=wrong)).status_code == 401
    third = await limited.post("/auth/login", json=wrong)
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    right = {"username": "victim", "password": PASSWORD}
    locked = await limited.post("/auth/login", json=right)
    assert locked.status_code == 429
    assert "locked" in locked.json()["detail"] and locked.json()["status_code"] == 429
    await asyncio.sleep(2.2)
    unlocked = await limited.post("/auth/login", json=right)
    assert unlocked.status_code == 200


async def test_a_success_resets_the_failure_count(
    limited: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("careful")
    wrong = {"username": "careful", "password": "guess-guess"}
    right = {"username": "careful", "password": PASSWORD}
    for _ in range(2):
        assert (await limited.post("/auth/login", json=wrong)).status_code == 401
    assert (await limited.post("/auth/login", json=right)).status_code == 200
    for _ in range(2):
        assert (await limited.post("/auth/login", json=wrong)).status_code == 401
    assert (await limited.post("/auth/login", json=right)).status_code == 200


async def test_logins_from_one_address_are_rate_limited_with_retry_after(
    limited: httpx.AsyncClient,
) -> None:
    codes = []
    for i in range(8):
        response = await limited.post(
            "/auth/login", json={"username": f"spray{i}", "password": "whatever-1"}
        )
        codes.append(response.status_code)
    assert codes[:6] == [401] * 6
    assert codes[6:] == [429, 429]
    assert 1 <= int(response.headers["retry-after"]) <= 30
    assert response.json()["status_code"] == 429

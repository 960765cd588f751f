"""Providers over REST on real PostgreSQL: CRUD, write-only encrypted credentials and
exchange ↔ provider priorities."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from marketpulse.accounts.secrets import SecretBox, generate_key
from marketpulse.api.app import create_app
from marketpulse.config import Settings
from tests.integration.reference.conftest import assert_error


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
async def keyed_api(settings: Settings, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API with ``CREDENTIALS_ENCRYPTION_KEY`` set."""
    app = create_app(settings.model_copy(update={"credentials_encryption_key": SecretStr(key)}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def test_provider_crud(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/providers", json={"name": "kite", "rate_limit_per_second": 3})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["kind"], body["enabled"], body["rate_limit_per_second"]) == ("broker", True, 3.0)
    assert body["has_credentials"] is False and "credentials" not in body
    await api.post("/api/providers", json={"name": "yahoo", "kind": "vendor"})
    assert [p["name"] for p in (await api.get("/api/providers")).json()] == ["kite", "yahoo"]
    patched = await api.patch(
        "/api/providers/kite", json={"enabled": False, "rate_limit_per_second": None}
    )
    assert (patched.json()["enabled"], patched.json()["rate_limit_per_second"]) == (False, None)
    assert (await api.get("/api/providers/kite")).json()["enabled"] is False
    assert (await api.delete("/api/providers/kite")).status_code == 204
    assert_error(await api.get("/api/providers/kite"), 404, "no provider 'kite'")


async def test_provider_validation_and_conflicts(api: httpx.AsyncClient) -> None:
    await api.post("/api/providers", json={"name": "kite"})
    assert_error(
        await api.post("/api/providers", json={"name": "kite"}), 409, "'kite' already exists"
    )
    assert_error(await api.post("/api/providers", json={"name": "Bad Name"}), 422)
    assert_error(
        await api.post("/api/providers", json={"name": "x", "rate_limit_per_second": 0}), 422
    )
    assert_error(
        await api.patch("/api/providers/kite", json={"enabled": None}),
        422,
        "enabled cannot be null",
    )
    assert_error(await api.patch("/api/providers/nope", json={"enabled": True}), 404)


async def test_credentials_are_encrypted_at_rest_and_never_returned(
    keyed_api: httpx.AsyncClient, pool: asyncpg.Pool, key: str
) -> None:
    await keyed_api.post("/api/providers", json={"name": "kite"})
    secret = {"api_key": "abc123", "api_secret": "s3cr3t-value"}
    stored = await keyed_api.put("/api/providers/kite/credentials", json=secret)
    assert stored.status_code == 200, stored.text
    assert stored.json()["has_credentials"] is True
    for response in (
        stored,
        await keyed_api.get("/api/providers/kite"),
        await keyed_api.get("/api/providers"),
    ):
        assert "s3cr3t-value" not in response.text and "abc123" not in response.text
    at_rest = await pool.fetchval("SELECT credentials FROM providers WHERE name = 'kite'")
    assert "s3cr3t-value" not in at_rest
    assert json.loads(SecretBox(key).decrypt(at_rest)) == secret
    assert_error(await keyed_api.put("/api/providers/kite/credentials", json={}), 422)
    assert_error(await keyed_api.put("/api/providers/kite/credentials", json=["x"]), 422)
    assert_error(await keyed_api.put("/api/providers/nope/credentials", json=secret), 404)
    cleared = await keyed_api.delete("/api/providers/kite/credentials")
    assert cleared.json()["has_credentials"] is False
    assert_error(await keyed_api.delete("/api/providers/kite/credentials"), 404)


async def test_storing_credentials_without_a_key_is_503_saying_so(api: httpx.AsyncClient) -> None:
    await api.post("/api/providers", json={"name": "kite"})
    assert_error(
        await api.put("/api/providers/kite/credentials", json={"api_key": "a"}),
        503,
        "CREDENTIALS_ENCRYPTION_KEY is not set",
    )


async def test_exchange_mappings_with_priority(api: httpx.AsyncClient) -> None:
    for name in ("kite", "dhan", "yahoo"):
        await api.post("/api/providers", json={"name": name})
    first = await api.put("/api/providers/kite/exchanges/NSE", json={"priority": 0})
    assert first.status_code == 201 and first.json() == {
        "exchange": "NSE",
        "provider": "kite",
        "priority": 0,
    }
    await api.put("/api/providers/yahoo/exchanges/NSE", json={"priority": 5})
    await api.put("/api/providers/dhan/exchanges/NSE", json={"priority": 1})
    await api.put("/api/providers/kite/exchanges/BSE", json={})
    again = await api.put("/api/providers/yahoo/exchanges/NSE", json={"priority": 2})
    assert again.status_code == 200 and again.json()["priority"] == 2
    nse = (await api.get("/api/exchange-providers", params={"exchange": "NSE"})).json()
    assert [(m["provider"], m["priority"]) for m in nse] == [("kite", 0), ("dhan", 1), ("yahoo", 2)]
    kite = (await api.get("/api/providers/kite/exchanges")).json()
    assert [m["exchange"] for m in kite] == ["BSE", "NSE"]
    assert (await api.delete("/api/providers/kite/exchanges/BSE")).status_code == 204
    assert_error(await api.delete("/api/providers/kite/exchanges/BSE"), 404)
    assert_error(
        await api.put("/api/providers/kite/exchanges/NOPE", json={}),
        422,
        "exchange 'NOPE' does not exist",
    )
    assert_error(await api.put("/api/providers/nope/exchanges/NSE", json={}), 404)
    assert_error(await api.put("/api/providers/kite/exchanges/NSE", json={"priority": -1}), 422)
    assert_error(await api.get("/api/exchange-providers", params={"exchange": "NOPE"}), 404)
    # Deleting a provider drops its exchange mappings with it.
    await api.delete("/api/providers/dhan")
    nse = (await api.get("/api/exchange-providers", params={"exchange": "NSE"})).json()
    assert [m["provider"] for m in nse] == ["kite", "yahoo"]

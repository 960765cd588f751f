"""CORS for configured origins, and no password, token or key in the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.config import Settings
from tests.integration.auth.conftest import PASSWORD, MakeUser, bearer, login


async def test_cors_preflight_is_allowed_only_for_configured_origins(
    auth_settings: Settings,
) -> None:
    settings = auth_settings.model_copy(update={"cors_origins": ["https://dash.example.com"]})
    app = create_app(settings)
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        allowed = await http.options(
            "/api/quotes", headers={"Origin": "https://dash.example.com", **preflight}
        )
        refused = await http.options(
            "/api/quotes", headers={"Origin": "https://evil.example.com", **preflight}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_no_cors_headers_when_no_origins_are_configured(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/api/quotes",
        headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers


async def test_login_refresh_and_api_key_use_log_no_secrets(
    http: httpx.AsyncClient, make_user: MakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await make_user("logged")
    bad = await http.post("/auth/login", json={"username": "logged", "password": "wrong-secret-x"})
    assert bad.status_code == 401
    tokens = await login(http, "logged")
    renewed = (
        await http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    created = await http.post(
        "/auth/api-keys", json={"name": "k"}, headers=bearer(renewed["access_token"])
    )
    key = created.json()["key"]
    assert (await http.get("/auth/me", headers={"X-API-Key": key})).status_code == 200
    assert (await http.get("/auth/me", headers=bearer("mpk_wrong-key-value"))).status_code == 401
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "login: logged" in text  # the log is captured, and it names the user
    secrets = [
        PASSWORD, "wrong-secret-x", key, "mpk_wrong-key-value",
        tokens["access_token"], tokens["refresh_token"],
        renewed["access_token"], renewed["refresh_token"],
    ]  # fmt: skip
    for secret in secrets:
        assert secret not in text

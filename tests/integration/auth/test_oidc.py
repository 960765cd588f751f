"""OpenID Connect sign-in against a local provider: PKCE, state, nonce and ID-token checks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from marketpulse.api.app import create_app
from marketpulse.config import Settings
from tests.integration.auth.conftest import MakeUser, bearer
from tests.integration.auth.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    running_provider,
)

CALLBACK = "http://testserver/auth/oidc/callback"


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with running_provider() as running:
        yield running


def _oidc_settings(auth_settings: Settings, provider: Provider, **extra: object) -> Settings:
    return auth_settings.model_copy(update={
        "oidc_issuer": provider.url, "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": SecretStr(CLIENT_SECRET), "oidc_redirect_uri": CALLBACK, **extra,
    })  # fmt: skip


@pytest.fixture
async def oidc_http(
    auth_settings: Settings, provider: Provider
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_oidc_settings(auth_settings, provider))
    async with _client(app) as http:
        yield http


def _client(app: FastAPI) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[httpx.AsyncClient]:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as http,
        ):
            yield http

    return run()


async def _sign_in(http: httpx.AsyncClient) -> httpx.Response:
    """Browser steps: our login redirect, the provider's consent redirect, our callback."""
    start = await http.get("/auth/oidc/login")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    callback = urlsplit(consent.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK
    return await http.get(f"{callback.path}?{callback.query}")


async def test_login_redirects_to_the_issuer_with_pkce_state_and_nonce(
    oidc_http: httpx.AsyncClient, provider: Provider
) -> None:
    start = await oidc_http.get("/auth/oidc/login")
    assert start.status_code == 302
    target = urlsplit(start.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{provider.url}/authorize"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"] and "openid" in query["scope"]


async def test_first_oidc_login_creates_a_user_and_returns_our_tokens(
    oidc_http: httpx.AsyncClient, provider: Provider
) -> None:
    signed_in = await _sign_in(oidc_http)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["role"] == "user" and tokens["refresh_token"]
    me = (await oidc_http.get("/auth/me", headers=bearer(tokens["access_token"]))).json()
    assert me["username"] == "oidc.user@example.com" and me["role"] == "user"
    again = await _sign_in(oidc_http)  # the same identity maps to the same user
    me_again = (
        await oidc_http.get("/auth/me", headers=bearer(again.json()["access_token"]))
    ).json()
    assert me_again["id"] == me["id"]
    assert provider.token_requests[0]["client_secret"] == CLIENT_SECRET


async def test_a_state_is_usable_once(oidc_http: httpx.AsyncClient) -> None:
    start = await oidc_http.get("/auth/oidc/login")
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    callback = urlsplit(consent.headers["location"])
    assert (await oidc_http.get(f"{callback.path}?{callback.query}")).status_code == 200
    replay = await oidc_http.get(f"{callback.path}?{callback.query}")
    assert replay.status_code == 400 and "state" in replay.json()["detail"]
    forged = await oidc_http.get("/auth/oidc/callback?code=x&state=made-up")
    assert forged.status_code == 400


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("aud", "audience"),
        ("nonce", "nonce"),
        ("signature", "signature"),
        ("issuer", "issuer"),
        ("expired", "expired"),
    ],
)
async def test_an_invalid_id_token_is_refused(
    oidc_http: httpx.AsyncClient, provider: Provider, tamper: str, reason: str
) -> None:
    provider.tamper = tamper
    refused = await _sign_in(oidc_http)
    assert refused.status_code == 400, refused.text
    assert reason in refused.json()["detail"].lower()
    assert refused.json()["status_code"] == 400


async def test_a_verified_email_links_an_existing_user_and_keeps_its_role(
    oidc_http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("oidc.user@example.com", role="admin")
    signed_in = await _sign_in(oidc_http)
    assert signed_in.status_code == 200
    assert signed_in.json()["role"] == "admin"


async def test_without_auto_create_an_unknown_identity_is_403(
    auth_settings: Settings, provider: Provider
) -> None:
    app = create_app(_oidc_settings(auth_settings, provider, oidc_auto_create=False))
    async with _client(app) as http:
        refused = await _sign_in(http)
    assert refused.status_code == 403
    assert "no marketpulse account" in refused.json()["detail"]


async def test_oidc_endpoints_are_404_when_not_configured(http: httpx.AsyncClient) -> None:
    assert (await http.get("/auth/oidc/login")).status_code == 404
    assert (await http.get("/auth/oidc/callback?code=a&state=b")).status_code == 404

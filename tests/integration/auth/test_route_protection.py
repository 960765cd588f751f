"""Every route is protected unless it is on an explicit public list; writes under /api/ need
the admin role. Walks ``app.routes``, so routes added later are covered automatically."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.integration.auth.conftest import MakeUser, bearer, login

PUBLIC = {
    ("GET", "/"),
    ("GET", "/health"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("GET", "/auth/oidc/login"),
    ("GET", "/auth/oidc/callback"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
# Writes under /api/ that a role-user may make (none today).
USER_WRITES: set[tuple[str, str]] = set()


def _endpoints(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route, including those of included routers."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        methods = route.methods or set()
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


def _concrete(path: str) -> str:
    """A request path for a route template: every parameter becomes 1."""
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_non_public_route_answers_401_without_credentials(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    endpoints = _endpoints(app)
    assert ("POST", "/subscribe") in endpoints and ("GET", "/api/quotes") in endpoints
    unprotected = []
    for method, path in endpoints:
        if (method, path) in PUBLIC:
            continue
        response = await http.request(method, _concrete(path))
        if response.status_code != 401 or response.headers.get("www-authenticate") != "Bearer":
            unprotected.append((method, path, response.status_code))
    assert unprotected == []


async def test_public_routes_answer_without_credentials(http: httpx.AsyncClient) -> None:
    for path in ("/", "/health", "/openapi.json", "/docs"):
        assert (await http.get(path)).status_code in (200, 503), path


async def test_every_write_under_api_answers_403_for_a_role_user(
    app: FastAPI, http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("plain")
    headers = bearer((await login(http, "plain"))["access_token"])
    writes = [(m, p) for m, p in _endpoints(app) if m != "GET" and p.startswith("/api/")]
    assert ("POST", "/api/historical/backfill") in writes
    allowed = []
    for method, path in [*writes, ("POST", "/subscribe"), ("POST", "/unsubscribe")]:
        if (method, path) in USER_WRITES:
            continue
        response = await http.request(method, _concrete(path), headers=headers)
        if response.status_code != 403:
            allowed.append((method, path, response.status_code))
    assert allowed == []

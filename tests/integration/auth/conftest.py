"""Fixtures for the auth tests: the real app with AUTH_ENABLED=true, and users in its database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.accounts.users import create_user
from marketpulse.api.app import create_app
from marketpulse.config import Settings
from marketpulse.store.orm import create_engine, create_sessionmaker

PASSWORD = "s3cret-passw0rd"


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    """The test settings with authentication on (the shared fixture turns it off)."""
    return settings.model_copy(
        update={"auth_enabled": True, "jwt_secret": settings.jwt_secret.__class__("t" * 40)}
    )


@pytest.fixture
async def app(auth_settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running (Redis, PostgreSQL, background tasks)."""
    application = create_app(auth_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


MakeUser = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_user(database_url: str) -> AsyncIterator[MakeUser]:
    """Create a user directly in the database, as ``marketpulse users create`` does."""
    engine = create_engine(database_url, pool_size=1)
    maker = create_sessionmaker(engine)

    async def make(username: str, role: str = "user", password: str = PASSWORD) -> Any:
        async with maker() as session:
            return await create_user(session, username, password, role=role)

    yield make
    await engine.dispose()


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await http.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""Fixtures for the reference-data API tests: the real app (lifespan running) over ASGI, on the
test's own migrated database, with authentication off (the shared settings fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.config import Settings


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


MakeInstrument = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_instrument(api: httpx.AsyncClient) -> MakeInstrument:
    """Create an instrument through the API and return its body."""

    async def make(symbol: str, **fields: Any) -> dict[str, Any]:
        response = await api.post("/api/instruments", json={"symbol": symbol, **fields})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return make


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    """The standard error body with ``status``, its detail mentioning every fragment."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    text = str(body["detail"])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"

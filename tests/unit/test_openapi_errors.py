"""The OpenAPI schema documents the error body the API really sends."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.api.errors import document_error_body, install_error_handlers


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    document_error_body(app)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


async def test_validation_errors_are_documented_with_the_detail_and_status_code_body(
    app: FastAPI,
) -> None:
    schema = app.openapi()
    response_schema = schema["paths"]["/items/{item_id}"]["get"]["responses"]["422"]
    ref = response_schema["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    documented = schema["components"]["schemas"][ref]
    assert documented["required"] == ["detail", "status_code"]
    assert documented["properties"]["status_code"]["type"] == "integer"
    # What the API actually answers has exactly the documented keys and types.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        actual = await client.get("/items/not-a-number")
    assert actual.status_code == 422
    body = actual.json()
    assert set(body) == set(documented["properties"])
    assert body["status_code"] == 422 and isinstance(body["detail"], list)
    assert {"type": "array", "items": {}} in documented["properties"]["detail"]["anyOf"]

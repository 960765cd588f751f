"""``/ws`` with authentication on: a token in the query or a first auth message, else 4401."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from marketpulse.config import Settings
from marketpulse.service import Endpoints, Role
from tests.integration.auth.conftest import MakeUser, login
from tests.support.service import running_service


@pytest.fixture
async def api(auth_settings: Settings) -> AsyncIterator[Endpoints]:
    async with running_service(auth_settings, frozenset({Role.API})) as endpoints:
        yield endpoints


async def _next(ws: ClientConnection) -> dict[str, object]:
    message: dict[str, object] = json.loads(await ws.recv(decode=True))
    return message


async def _closed_code(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason the server ended the connection with."""
    frame = None
    async with asyncio.timeout(15):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            frame = closed.rcvd
    assert frame is not None
    return frame.code, frame.reason


async def test_websocket_without_a_token_is_closed_with_4401(api: Endpoints) -> None:
    async with connect(f"{api.ws}") as ws:
        await ws.send(json.dumps({"message_type": "subscribe", "channel": "TCS.NSE"}))
        code, reason = await _closed_code(ws)
    assert code == 4401 and "authentication required" in reason


async def test_websocket_with_a_bad_token_is_closed_with_4401(api: Endpoints) -> None:
    async with connect(f"{api.ws}?token=mpk_not-a-real-key") as ws:
        code, reason = await _closed_code(ws)
    assert code == 4401 and reason == "invalid or revoked API key"


async def test_websocket_accepts_a_jwt_in_the_query(api: Endpoints, make_user: MakeUser) -> None:
    await make_user("streamer")
    async with httpx.AsyncClient(base_url=api.http) as http:
        token = (await login(http, "streamer"))["access_token"]
    async with connect(f"{api.ws}?token={token}") as ws:
        hello = await _next(ws)
        assert hello["message_type"] == "info" and "connected" in str(hello["message"])
        await ws.send(json.dumps({"message_type": "subscribe", "channel": "TCS.NSE"}))
        ack = await _next(ws)
        assert ack["message_type"] in ("info", "error")  # answered, not closed


async def test_websocket_accepts_an_api_key_in_the_first_message(
    api: Endpoints, make_user: MakeUser
) -> None:
    await make_user("program")
    async with httpx.AsyncClient(base_url=api.http) as http:
        token = (await login(http, "program"))["access_token"]
        key = (
            await http.post(
                "/auth/api-keys", json={"name": "ws"}, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()["key"]
    async with connect(api.ws) as ws:
        await ws.send(json.dumps({"action": "auth", "token": key}))
        assert await _next(ws) == {"message_type": "info", "message": "authenticated as program"}
        hello = await _next(ws)
        assert "connected" in str(hello["message"])

"""Subscriptions changed over the API reach the running feed through Redis and survive a
restart of the service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from marketpulse.config import Settings
from tests.support.polling import poll, sim_connected
from tests.support.service import running_service


@pytest.fixture
def two_symbols(settings: Settings) -> Settings:
    return settings.model_copy(update={"subscribe": ["RELIANCE.NSE", "INFY.NSE"]})


async def test_subscribe_over_the_api_starts_the_stream_and_is_restored_after_restart(
    two_symbols: Settings,
) -> None:
    async with running_service(two_symbols) as service:
        async with httpx.AsyncClient(base_url=service.http) as http:
            await sim_connected(http)
            symbols = {s["symbol"] for s in (await http.get("/symbols")).json()["symbols"]}
            assert symbols == {"RELIANCE.NSE", "INFY.NSE"}
            resp = await http.post("/subscribe", json={"symbols": ["NSE:TCS", "^NSEI"],
                                                        "mode": "quote"})  # fmt: skip
            assert resp.status_code == 202, resp.text
            command = resp.json()
            assert command["symbols"] == ["TCS.NSE", "NIFTY50.NSE_INDEX"]
            assert command["feeds"] == ["sim"]
            result = await poll(http, f"/subscribe/{command['command_id']}",
                                lambda b: b["status"] != "pending")  # fmt: skip
            assert result["status"] == "applied" and result["feeds"] == {"sim": "ok"}
            listed = await poll(http, "/symbols", lambda b: b["count"] == 4)
            modes = {s["symbol"]: s["mode"] for s in listed["symbols"]}
            assert modes["TCS.NSE"] == "quote"
        async with connect(service.ws) as ws:
            await ws.send(json.dumps({"message_type": "subscribe", "channel": "TCS.NSE"}))
            async with asyncio.timeout(15):
                while (msg := json.loads(await ws.recv()))["message_type"] != "data":
                    pass
            assert msg["data"]["symbol"] == "TCS.NSE" and msg["data"]["mode"] == "quote"

    # A new service process (same Redis): the persisted subscription comes back by itself.
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        listed = await poll(http, "/symbols", lambda b: b["count"] == 4)
        assert {s["symbol"] for s in listed["symbols"]} >= {"TCS.NSE", "NIFTY50.NSE_INDEX"}
        resp = await http.post("/unsubscribe", json={"symbols": ["TCS.NSE"]})
        assert resp.status_code == 202
        await poll(http, "/symbols", lambda b: b["count"] == 3)


async def test_symbols_the_feed_cannot_stream_are_reported_in_the_command_result(
    two_symbols: Settings,
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        resp = await http.post("/subscribe", json={"symbols": ["NOSUCH.NSE"]})
        command_id = resp.json()["command_id"]
        result = await poll(http, f"/subscribe/{command_id}",
                            lambda b: b["status"] != "pending")  # fmt: skip
        assert result["status"] == "failed"
        assert "the simulator has no NOSUCH.NSE" in result["feeds"]["sim"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"symbols": ["BAD.XYZ"]}, 422, "unknown exchange"),
        ({"symbols": []}, 422, "at least 1"),
        ({"symbols": ["TCS.NSE"], "mode": "deep"}, 422, "ltp"),
        ({"symbols": ["TCS.NSE"], "feed": "kite"}, 422, "not running"),
    ],
)
async def test_bad_subscription_requests_are_rejected_before_reaching_a_feed(
    two_symbols: Settings, body: dict[str, Any], status: int, needle: str
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        resp = await http.post("/subscribe", json=body)
        assert resp.status_code == status
        assert needle in json.dumps(resp.json()["detail"])
        missing = await http.get("/subscribe/" + "0" * 32)
        assert missing.status_code == 404

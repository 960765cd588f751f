"""Waiting for the ingest process to apply what the API asked (it runs asynchronously)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect


async def until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Wait until ``condition()`` (sync or async) is true. A hang guard only: tests assert on
    state, never on elapsed time, so the generous timeout costs nothing when they pass."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def poll(
    http: httpx.AsyncClient, path: str, check: Callable[[Any], bool], timeout: float = 15.0
) -> Any:
    """GET ``path`` until ``check(body)`` holds; the last body in the failure otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await http.get(path)).json()
        if check(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


async def sim_connected(http: httpx.AsyncClient) -> None:
    await poll(http, "/health", lambda b: b["feeds"].get("sim", {}).get("connected"))


async def streamed_symbols(http: httpx.AsyncClient) -> set[str]:
    return {s["symbol"] for s in (await http.get("/symbols")).json()["symbols"]}


async def first_tick(ws_url: str, symbol: str, timeout: float = 15.0) -> dict[str, Any]:
    """The first data message for ``symbol`` on the WebSocket: proof that it streams."""
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"message_type": "subscribe", "channel": symbol}))
        async with asyncio.timeout(timeout):
            while (msg := json.loads(await ws.recv()))["message_type"] != "data":
                pass
    data: dict[str, Any] = msg["data"]
    return data

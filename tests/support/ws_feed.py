"""A small real WebSocket market feed for exercising the shared supervisor.

The server is a genuine ``websockets`` server on loopback whose behaviour a test scripts: it can
reject credentials, drop every connection, go silent, or send heartbeats without data. The
adapter is a minimal broker adapter on the real :class:`FeedSupervisor` — what a broker folder
provides, without a binary protocol.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from marketpulse.feeds.base import FeedAdapter, FeedAuthError, FeedConnection
from marketpulse.model import Mode, Tick


@dataclass
class ConnectionLog:
    token: str
    subscribes: list[tuple[list[str], str]] = field(default_factory=list)
    unsubscribes: list[list[str]] = field(default_factory=list)


class ScriptedFeedServer:
    """Streams one tick per subscribed token every ``interval`` seconds, as scripted."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.valid_tokens: set[str] = {"good"}
        self.silent = False
        self.heartbeats_only = False
        self.connections: list[ConnectionLog] = []
        self.rejected = 0
        self._live: set[ServerConnection] = set()
        self._server: Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedFeedServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._check_auth, ping_interval=None
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def _check_auth(self, conn: ServerConnection, request: Request) -> Response | None:
        token = request.path.partition("token=")[2]
        if token not in self.valid_tokens:
            self.rejected += 1
            return conn.respond(HTTPStatus.FORBIDDEN, "invalid token\n")
        return None

    async def drop_all(self) -> None:
        for ws in list(self._live):
            await ws.close(1011, "dropped by test")

    async def _handle(self, ws: ServerConnection) -> None:
        log = ConnectionLog(token=ws.request.path.partition("token=")[2] if ws.request else "")
        self.connections.append(log)
        subscribed: dict[str, str] = {}
        self._live.add(ws)

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["a"] == "subscribe":
                    log.subscribes.append((msg["v"], msg["m"]))
                    subscribed.update(dict.fromkeys(msg["v"], msg["m"]))
                else:
                    log.unsubscribes.append(msg["v"])
                    for token in msg["v"]:
                        subscribed.pop(token, None)

        read_task = asyncio.create_task(reader())
        price = 100.0
        try:
            while not read_task.done():
                await asyncio.sleep(self.interval)
                if self.silent:
                    continue
                if self.heartbeats_only or not subscribed:
                    await ws.send(json.dumps({"ticks": []}))
                    continue
                price += 0.05
                ticks = [
                    {"token": t, "mode": m, "ltp": round(price, 2)} for t, m in subscribed.items()
                ]
                await ws.send(json.dumps({"ticks": ticks}))
        except Exception:
            pass
        finally:
            read_task.cancel()
            self._live.discard(ws)


class CredentialBox:
    """Credentials the adapter re-reads before each connect (a test swaps them)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.reads = 0


class ScriptedConnection(FeedConnection):
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        await self._ws.send(json.dumps({"a": "subscribe", "v": list(tokens), "m": mode.value}))

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        await self._ws.send(json.dumps({"a": "unsubscribe", "v": list(tokens)}))

    async def receive(self) -> list[Tick]:
        message: Any = json.loads(await self._ws.recv())
        now = time.time_ns()
        return [
            Tick(
                source="test",
                token=t["token"],
                exchange="NSE",
                mode=t["mode"],
                ltp=t["ltp"],
                ts_recv=now,
            )
            for t in message["ticks"]
        ]

    async def close(self) -> None:
        await self._ws.close()


class ScriptedAdapter(FeedAdapter):
    name = "scripted"

    def __init__(
        self,
        url: str,
        credentials: CredentialBox,
        *,
        per_connection: int | None = None,
        connections: int = 1,
        market_open: bool = True,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.max_instruments_per_connection = per_connection
        self.max_connections = connections
        self._market_open = market_open

    async def load_credentials(self) -> str:
        self.credentials.reads += 1
        return self.credentials.token

    async def connect(self, credentials: Any) -> FeedConnection:
        try:
            ws = await connect(f"{self.url}?token={credentials}", ping_interval=None)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise FeedAuthError(
                    f"the feed rejected the access token (HTTP {exc.response.status_code}); "
                    "log in again"
                ) from exc
            raise
        return ScriptedConnection(ws)

    def market_open(self, now: float) -> bool:
        return self._market_open

"""Serving an ASGI app on a socket we bind ourselves (so port 0 yields a known port), without
uvicorn's own signal handling — the service and the emulators decide how to stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from marketpulse.websocket_frames import FrameWriterProtocol


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the caller owns shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, with an error that says how to fix a busy port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose a free port"
            " (API_PORT / --port)"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_server(
    app: Any,
    *,
    ws_per_message_deflate: bool = True,
    ws_ping_interval: float | None = 20.0,
    ws_ping_timeout: float | None = 20.0,
) -> QuietServer:
    """A quiet uvicorn server for ``app``.

    ``ws_per_message_deflate`` decides whether WebSocket clients that offer permessage-deflate
    get it. It is negotiated per connection, so with it on every message is compressed once
    for every client: the API role turns it off by default (``WS_COMPRESSION``); the broker
    emulators keep uvicorn's default (on), as the real brokers offer it. The server pings every
    WebSocket client each ``ws_ping_interval`` seconds and closes one that has not answered
    within ``ws_ping_timeout`` (uvicorn's defaults: 20 and 20). WebSocket connections use
    :class:`FrameWriterProtocol`: uvicorn's sans-I/O protocol that also lets the API's hub write
    pre-encoded frames (``websocket_frames``)."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, ws=FrameWriterProtocol, lifespan="on",
        timeout_graceful_shutdown=3, ws_per_message_deflate=ws_per_message_deflate,
        ws_ping_interval=ws_ping_interval, ws_ping_timeout=ws_ping_timeout,
    )  # fmt: skip
    return QuietServer(config)


async def start(server: QuietServer, sock: socket.socket) -> asyncio.Task[None]:
    """Start serving and return once the app is accepting requests."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn exposes readiness only as a flag, so poll it briefly.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
    return task


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Serve ``app`` for the duration of the block; yields the bound port.

    An app that needs other server settings (a broker emulator's WebSocket keep-alive) names
    them in ``app.state.server_options``, as :func:`make_server` keywords."""
    sock = listen(host, port)
    state = getattr(app, "state", None)
    server = make_server(app, **getattr(state, "server_options", {}))
    task = await start(server, sock)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)

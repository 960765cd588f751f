"""Refusing a WebSocket upgrade with an HTTP status, as brokers do (401 bad token, 429 too many
connections), without uvicorn logging an error for every refused client.

uvicorn's sansio WebSocket protocol does not count an HTTP answer to the upgrade as a finished
handshake and logs "returned without completing handshake" for it. :func:`quiet_denials`
installs a filter that drops only that record, and only in a request task that just called
:func:`deny`.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Final

from fastapi import WebSocket
from fastapi.responses import PlainTextResponse

_denied: ContextVar[bool] = ContextVar("emulator_denied", default=False)


class _DenialLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and "without completing handshake" in record.getMessage())


_DENIAL_FILTER: Final = _DenialLogFilter()


def quiet_denials() -> None:
    """Install the filter on uvicorn's error logger (idempotent)."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if _DENIAL_FILTER not in uvicorn_log.filters:
        uvicorn_log.addFilter(_DENIAL_FILTER)


async def deny(websocket: WebSocket, status: int, text: str) -> None:
    """Answer the upgrade request with ``status`` and ``text`` instead of accepting it."""
    _denied.set(True)
    await websocket.send_denial_response(PlainTextResponse(text, status_code=status))

"""``WS /ws``: subscribe to channels, receive ``data`` messages.

Authentication (unless ``AUTH_ENABLED=false``): ``/ws?token=<access token or API key>``, or
a first message ``{"action": "auth", "token": ...}``; otherwise the socket closes with 4401.
Client → server: ``{"message_type": "subscribe" | "unsubscribe", "channel": "RELIANCE.NSE"}``.
Server → client: ``info`` (acknowledgements), ``error`` (a bad request, the socket stays open)
and ``data`` (``{"message_type": "data", "channel": ..., "data": <Tick JSON>}``).

Opt-in batching: ``/ws?batch=true`` makes the server send the data messages that queued up
while it was writing as one frame, ``{"message_type": "batch", "messages": [<data>, ...]}``
(the same data messages, in one frame and one socket write; ``info``/``error`` stay single).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from marketpulse.api.deps import HubDep, RedisDep, SettingsDep
from marketpulse.api.hub import CLOSE_TOO_SLOW, Client, Hub
from marketpulse.api.security import authenticate_websocket
from marketpulse.bus.candles import candle_channel, parse_candle_channel
from marketpulse.config import Settings
from marketpulse.feeds.history import parse_interval
from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.subscriptions import is_tracked
from marketpulse.websocket_frames import frame_writer

router = APIRouter(tags=["streaming"])


class ClientMessage(msgspec.Struct):
    message_type: str
    channel: str | None = None


_decode_message = msgspec.json.Decoder(ClientMessage).decode


def _info(message: str, **extra: Any) -> str:
    return json.dumps({"message_type": "info", "message": message, **extra})


def _error(detail: str, status_code: int = 400, **extra: Any) -> str:
    return json.dumps(
        {"message_type": "error", "detail": detail, "status_code": status_code, **extra}
    )


@router.websocket("/ws")
async def websocket_endpoint(
    websocket: WebSocket, hub: HubDep, redis: RedisDep, settings: SettingsDep
) -> None:
    await websocket.accept()
    if await authenticate_websocket(websocket) is None:
        return  # closed with 4401 and the reason
    batch = _batch_option(websocket.query_params.get("batch"))
    client = Client(
        websocket.send_text,
        max_pending=settings.ws_client_queue_size,
        max_lag=settings.ws_client_max_lag_seconds,
        batch=batch is True,
        write_frames=frame_writer(websocket.scope),
    )
    hub.add(client)
    if batch is None:
        client.tell(_error("batch must be true or false; sending unbatched", 422))
    client.tell(_info('connected; send {"message_type": "subscribe", "channel": "RELIANCE.NSE"}'))
    writer = asyncio.create_task(client.write_loop())
    reader = asyncio.create_task(_read_loop(websocket, client, hub, redis, settings))
    kicked = asyncio.create_task(client.kicked.wait())
    try:
        await asyncio.wait({writer, reader, kicked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(client)
        for task in (writer, reader, kicked):
            task.cancel()
        await asyncio.gather(writer, reader, kicked, return_exceptions=True)
    if client.kick_reason is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                websocket.close(CLOSE_TOO_SLOW, client.kick_reason[:120]), timeout=1.0
            )


async def _read_loop(
    websocket: WebSocket, client: Client, hub: Hub, redis: Any, settings: Settings
) -> None:
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                message = _decode_message(raw)
            except msgspec.DecodeError as exc:
                client.tell(
                    _error(
                        f"invalid message: {exc}; expected "
                        '{"message_type": "subscribe", "channel": "RELIANCE.NSE"}'
                    )
                )
                continue
            kind = message.message_type
            if kind not in ("subscribe", "unsubscribe"):
                client.tell(_error(f"unknown message_type {kind!r}; use subscribe or unsubscribe"))
                continue
            if not message.channel:
                client.tell(_error(f"{kind} needs a channel, e.g. RELIANCE.NSE"))
                continue
            try:
                channel, symbol = channel_of(message.channel)
            except (SymbolError, ValueError) as exc:
                client.tell(_error(str(exc), 422, channel=message.channel))
                continue
            if kind == "subscribe":
                hub.subscribe(client, channel)
                try:
                    tracked = await is_tracked(redis, settings, symbol)
                except (RedisError, OSError):
                    tracked = None
                client.tell(_info(f"subscribed to {channel}", channel=channel, tracked=tracked))
            else:
                hub.unsubscribe(client, channel)
                client.tell(_info(f"unsubscribed from {channel}", channel=channel))
    except WebSocketDisconnect:
        return


def _batch_option(value: str | None) -> bool | None:
    """``?batch=`` as a flag: absent = off, ``None`` for a value that is not a boolean."""
    if value is None:
        return False
    return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())


def channel_of(text: str) -> tuple[str, str]:
    """A requested channel in canonical form, and its symbol: ``RELIANCE.NSE`` (ticks) or
    ``candles:{interval}:{SYMBOL}`` (live candle updates)."""
    candle = parse_candle_channel(text.strip())
    if candle is None:
        symbol = normalize_symbol(text)
        return symbol, symbol
    interval, raw_symbol = candle
    symbol = normalize_symbol(raw_symbol)
    return candle_channel(parse_interval(interval), symbol), symbol

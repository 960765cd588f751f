"""Changing what the feeds stream while they run: ``POST /subscribe`` and ``/unsubscribe``.

The API validates and hands the change to the ingest processes through Redis (see
:mod:`marketpulse.bus.control`); it answers 202 with a command id, and
``GET /subscribe/{id}`` shows how each feed applied it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from marketpulse.api.deps import RedisDep, SettingsDep
from marketpulse.bus.control import ControlCommand, read_result, send_command
from marketpulse.bus.status import read_reports
from marketpulse.model import SymbolError, normalize_symbol

router = APIRouter(tags=["subscriptions"])


class SubscriptionRequest(BaseModel):
    symbols: list[str] = Field(min_length=1, max_length=5000, examples=[["RELIANCE.NSE", "^NSEI"]])
    mode: Literal["ltp", "quote", "full"] = "full"
    feed: str | None = Field(None, description="one feed; default: every running feed")


def _normalise(symbols: list[str]) -> list[str]:
    good: list[str] = []
    bad: list[str] = []
    for raw in symbols:
        try:
            good.append(normalize_symbol(raw))
        except SymbolError as exc:
            bad.append(str(exc))
    if bad:
        raise HTTPException(422, bad)
    return list(dict.fromkeys(good))


async def _dispatch(
    action: Literal["subscribe", "unsubscribe"],
    body: SubscriptionRequest,
    redis: Any,
    settings: Any,
) -> dict[str, Any]:
    symbols = _normalise(body.symbols)
    try:
        running = [r.name for r in await read_reports(redis, settings)]
        if body.feed is not None and body.feed not in running:
            raise HTTPException(
                422, f"feed {body.feed!r} is not running; running feeds: {running or 'none'}"
            )
        feeds = [body.feed] if body.feed else running
        if not feeds:
            raise HTTPException(503, "no ingest process is running a feed")
        command = ControlCommand(action, symbols, body.mode, body.feed)
        await send_command(redis, settings, command, feeds)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    return {"command_id": command.id, "action": action, "symbols": symbols,
            "mode": body.mode, "feeds": feeds, "status": "pending"}  # fmt: skip


@router.post("/subscribe", status_code=202, summary="Stream more symbols on the running feeds")
async def subscribe(
    body: SubscriptionRequest, redis: RedisDep, settings: SettingsDep
) -> dict[str, Any]:
    """Persisted: a restarted ingest process subscribes them again."""
    return await _dispatch("subscribe", body, redis, settings)


@router.post("/unsubscribe", status_code=202, summary="Stop streaming symbols")
async def unsubscribe(
    body: SubscriptionRequest, redis: RedisDep, settings: SettingsDep
) -> dict[str, Any]:
    return await _dispatch("unsubscribe", body, redis, settings)


@router.get("/subscribe/{command_id}", summary="How a subscription change was applied")
async def subscription_result(
    command_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    redis: RedisDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    try:
        result = await read_result(redis, settings, command_id)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    if result is None:
        raise HTTPException(404, f"no subscription command {command_id} (results last an hour)")
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]

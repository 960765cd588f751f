"""Changing what the feeds stream while they run: ``POST /subscribe`` and ``/unsubscribe``.

The API validates and hands the change to the ingest processes through Redis (see
:mod:`marketpulse.bus.control`); it answers 202 with a command id, and
``GET /subscribe/{id}`` shows how each feed applied it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from marketpulse.api.deps import PoolDep, RedisDep, SettingsDep
from marketpulse.api.security import require_admin, require_user
from marketpulse.api.subscription_changes import (
    dispatch_change,
    normalise_symbols,
    persist_change,
    reported_feeds,
)
from marketpulse.bus.control import read_result

router = APIRouter(tags=["subscriptions"])


class SubscriptionRequest(BaseModel):
    symbols: list[str] = Field(min_length=1, max_length=5000, examples=[["RELIANCE.NSE", "^NSEI"]])
    mode: Literal["ltp", "quote", "full"] = "full"
    feed: str | None = Field(None, description="one feed; default: every running feed")


async def _dispatch(
    action: Literal["subscribe", "unsubscribe"],
    body: SubscriptionRequest,
    redis: Any,
    settings: Any,
    pool: Any,
) -> dict[str, Any]:
    symbols = normalise_symbols(body.symbols)
    running = await reported_feeds(redis, settings, fresh=False)
    if body.feed is not None and body.feed not in running:
        raise HTTPException(
            422, f"feed {body.feed!r} is not running; running feeds: {running or 'none'}"
        )
    feeds = [body.feed] if body.feed else running
    if not feeds:
        raise HTTPException(503, "no ingest process is running a feed")
    await persist_change(pool, action, symbols, body.mode, body.feed)
    command = await dispatch_change(redis, settings, action, symbols, body.mode, body.feed, feeds)
    return {"command_id": command.id, "action": action, "symbols": symbols,
            "mode": body.mode, "feeds": feeds, "status": "pending"}  # fmt: skip


@router.post("/subscribe", status_code=202, summary="Stream more symbols on the running feeds",
             dependencies=[Depends(require_admin)])  # fmt: skip
async def subscribe(
    body: SubscriptionRequest, redis: RedisDep, settings: SettingsDep, pool: PoolDep
) -> dict[str, Any]:
    """Persisted (the ``subscriptions`` table): a restarted ingest process subscribes them
    again."""
    return await _dispatch("subscribe", body, redis, settings, pool)


@router.post("/unsubscribe", status_code=202, summary="Stop streaming symbols",
             dependencies=[Depends(require_admin)])  # fmt: skip
async def unsubscribe(
    body: SubscriptionRequest, redis: RedisDep, settings: SettingsDep, pool: PoolDep
) -> dict[str, Any]:
    return await _dispatch("unsubscribe", body, redis, settings, pool)


@router.get("/subscribe/{command_id}", summary="How a subscription change was applied",
            dependencies=[Depends(require_user)])  # fmt: skip
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

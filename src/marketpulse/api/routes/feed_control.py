"""Feed control over REST: ``POST /api/ws/stop``, ``POST /api/ws/start``, ``GET /api/ws/status``.

The feeds run in ingest processes, possibly on other machines; the API reaches them through the
Redis control stream (:mod:`marketpulse.bus.control`) and reads their state from the status
reports they write every second (:mod:`marketpulse.bus.status`). A stop disconnects the feed
and keeps it stopped — no reconnect — until a start connects it again with its subscriptions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from marketpulse.api.deps import RedisDep, SettingsDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.bus.control import ControlCommand, ControlResult, read_result, send_command
from marketpulse.bus.status import FeedReport, fresh_reports, read_reports
from marketpulse.config import Settings
from marketpulse.feeds.registry import FEEDS

router = APIRouter(prefix="/api/ws", tags=["feed control"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown feed, or no ingest process runs it"},
    503: {"description": "Redis unavailable, or no ingest process is running"},
}


class FeedControlRequest(BaseModel):
    feed: str | None = Field(None, description="one feed; omitted or null: every running feed")

    model_config = {"json_schema_extra": {"examples": [{"feed": "sim"}, {}]}}


def _check_known(feed: str | None) -> None:
    if feed is not None and feed not in FEEDS:
        raise HTTPException(404, f"unknown feed {feed!r}; available: {', '.join(sorted(FEEDS))}")


async def _live_reports(redis: Any, settings: Settings) -> list[FeedReport]:
    """Reports of live ingest processes; 503 when Redis is down or none runs."""
    try:
        reports = fresh_reports(await read_reports(redis, settings), time.time())
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    if not reports:
        raise HTTPException(503, "no ingest process is running a feed (start `marketpulse "
                                 "ingest` or `marketpulse serve`)")  # fmt: skip
    return reports


def _feeds_for(feed: str | None, reports: list[FeedReport]) -> list[str]:
    names = [r.name for r in reports]
    if feed is None:
        return names
    if feed not in names:
        raise HTTPException(404, f"feed {feed!r} is not run by any ingest process; running: "
                                 f"{', '.join(names)}")  # fmt: skip
    return [feed]


async def _await_result(
    redis: Any, settings: Settings, command: ControlCommand, feeds: list[str], wait: float
) -> ControlResult | None:
    """The command's result once every feed answered, or ``None`` after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        result = await read_result(redis, settings, command.id)
        if result is not None and set(feeds) <= set(result.feeds):
            return result
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def _control(
    action: Literal["start", "stop"],
    body: FeedControlRequest,
    response: Response,
    redis: Any,
    settings: Settings,
    wait: float,
) -> dict[str, Any]:
    _check_known(body.feed)
    feeds = _feeds_for(body.feed, await _live_reports(redis, settings))
    command = ControlCommand(action, [], feed=body.feed)
    try:
        await send_command(redis, settings, command, feeds)
        result = await _await_result(redis, settings, command, feeds, wait)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    if result is None:
        response.status_code = 202
        return {"command_id": command.id, "action": action, "feeds": dict.fromkeys(feeds),
                "status": "pending"}  # fmt: skip
    return {"command_id": command.id, "action": action, "feeds": result.feeds,
            "status": result.status}  # fmt: skip


WaitQuery = Annotated[
    float,
    Query(ge=0, le=30, description="seconds to wait for the feeds to apply it; then 202"),
]


@router.post("/stop", summary="Disconnect feeds and keep them stopped", responses=_ERRORS)
async def stop_feeds(
    redis: RedisDep,
    settings: SettingsDep,
    response: Response,
    _: AdminUser,
    body: FeedControlRequest | None = None,
    wait: WaitQuery = 5.0,
) -> dict[str, Any]:
    """200 with each feed's outcome once applied (state ``stopped`` in ``/api/ws/status``);
    202 with ``status: pending`` if the feeds did not answer within ``wait`` seconds."""
    return await _control("stop", body or FeedControlRequest(), response, redis, settings, wait)


@router.post("/start", summary="Connect stopped feeds again", responses=_ERRORS)
async def start_feeds(
    redis: RedisDep,
    settings: SettingsDep,
    response: Response,
    _: AdminUser,
    body: FeedControlRequest | None = None,
    wait: WaitQuery = 5.0,
) -> dict[str, Any]:
    """The feed reconnects and subscribes everything it streamed before the stop; starting a
    running feed is not an error."""
    return await _control("start", body or FeedControlRequest(), response, redis, settings, wait)


def _status_view(report: FeedReport, now: float) -> dict[str, Any]:
    expires = report.token_expires_at
    return {
        "feed": report.name,
        "state": report.state,
        "connected": report.connected,
        "connections": report.connections,
        "instruments": report.instruments,
        "last_tick_age_seconds": (
            round(now - report.last_tick_at, 3) if report.last_tick_at else None
        ),
        "reconnects": report.reconnects,
        "ticks_received": report.ticks_received,
        "token_expires_at": expires,
        "token_expires_in_seconds": round(expires - now, 1) if expires is not None else None,
        "last_error": report.last_error,
        "host": report.host,
        "pid": report.pid,
        "report_age_seconds": round(now - report.updated_at, 3),
    }


@router.get("/status", summary="Per feed: state, connections, instruments, token expiry",
            responses=_ERRORS)  # fmt: skip
async def feed_status(
    redis: RedisDep,
    settings: SettingsDep,
    _: CurrentUser,
    feed: Annotated[str | None, Query(max_length=64, description="only this feed")] = None,
) -> dict[str, Any]:
    """States: ``connecting``, ``connected``, ``backoff``, ``failed`` (credentials rejected —
    see ``last_error``) and ``stopped`` (by ``POST /api/ws/stop``)."""
    _check_known(feed)
    reports = await _live_reports(redis, settings)
    names = set(_feeds_for(feed, reports))
    now = time.time()
    views = [_status_view(r, now) for r in reports if r.name in names]
    return {"feeds": views, "count": len(views)}

"""Liveness and throughput: ``/health`` and ``/stats``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from marketpulse.api.deps import HubDep, PoolDep, RedisDep, SamplerDep, SettingsDep
from marketpulse.api.security import require_user
from marketpulse.bus.status import STALE_AFTER_SECONDS, FeedReport, read_reports
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.gaps import gap_summary

router = APIRouter(tags=["health"])


def _feed_view(report: FeedReport, now: float) -> dict[str, Any]:
    stale = now - report.updated_at > STALE_AFTER_SECONDS
    return {
        "state": "unknown" if stale else report.state,
        "connected": report.connected and not stale,
        "connections": report.connections,
        "instruments": report.instruments,
        "reconnects": report.reconnects,
        "last_tick_age_seconds": (
            round(now - report.last_tick_at, 3) if report.last_tick_at else None
        ),
        "report_age_seconds": round(now - report.updated_at, 3),
        "last_error": report.last_error,
        "buffered_ticks": report.buffered,
        "dropped_ticks": report.dropped,
        "spilling": report.spilling and not stale,
        "spilled_ticks": report.spilled,
        "replayed_ticks": report.replayed,
        "spill_backlog_ticks": report.spill_backlog,
    }


def _per_process(reports: list[FeedReport], field: str) -> int:
    """A publisher counter summed over ingest processes (each feed's report repeats it)."""
    seen: dict[tuple[str, int], int] = {}
    for report in reports:
        seen[(report.host, report.pid)] = getattr(report, field)
    return sum(seen.values())


@router.get("/health", summary="Redis, PostgreSQL and feed health")
async def health(
    redis: RedisDep, pool: PoolDep, settings: SettingsDep, hub: HubDep
) -> JSONResponse:
    """200 when Redis and PostgreSQL answer, 503 otherwise; feeds are reported either way."""
    now = time.time()
    body: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        await redis.ping()
        body["redis"] = {
            "ok": True,
            "latency_ms": round((time.perf_counter() - started) * 1e3, 2),
            **await redis_state(redis, settings),
        }
        reports = await read_reports(redis, settings)
        feeds = {r.name: _feed_view(r, now) for r in reports}
        # An ingest process that cannot write to Redis reports it; PING from here may work.
        if any(not r.redis_ok for r in reports):
            body["redis"]["ingest_writes_failing"] = True
        body["store"] = await _store_backlog(
            redis, settings.firehose_keys, settings.store_consumer_group
        )
    except (RedisError, OSError) as exc:
        body["redis"] = {"ok": False, "error": str(exc)}
        feeds = {}
    started = time.perf_counter()
    try:
        await pool.fetchval("SELECT 1", timeout=5)
        body["database"] = {
            "ok": True,
            "latency_ms": round((time.perf_counter() - started) * 1e3, 2),
        }
    except Exception as exc:  # any driver failure means "database down" here
        body["database"] = {"ok": False, "error": str(exc) or type(exc).__name__}
    body["feeds"] = feeds
    body["websocket_clients"] = len(hub.clients)
    ok = body["redis"]["ok"] and body["database"]["ok"]
    feeds_ok = all(f["connected"] for f in feeds.values()) and not body["redis"].get(
        "ingest_writes_failing"
    )
    # Spilling: the store is far behind and new ticks wait in ingest's spill file.
    feeds_ok = feeds_ok and not any(f["spilling"] for f in feeds.values())
    body["status"] = "ok" if ok and feeds_ok else ("degraded" if ok else "down")
    return JSONResponse({"status": body.pop("status"), **body}, 200 if ok else 503)


async def redis_state(redis: Any, settings: Any) -> dict[str, Any]:
    """Memory use and firehose stream lengths, for operators watching Redis fill up."""
    memory = await redis.info("memory")
    pipe = redis.pipeline(transaction=False)
    for key in settings.firehose_keys:
        pipe.xlen(key)
    lengths = await pipe.execute()
    return {
        "used_memory": memory.get("used_memory"),
        "used_memory_human": memory.get("used_memory_human"),
        "maxmemory": memory.get("maxmemory"),
        "firehose_lengths": dict(zip(settings.firehose_keys, lengths, strict=True)),
    }


async def _store_backlog(redis: Any, streams: list[str], group: str) -> dict[str, Any]:
    """Entries waiting for the store (unread + unacknowledged) per the consumer group."""
    pending = lag = 0
    for stream in streams:
        try:
            groups = await redis.xinfo_groups(stream)
        except RedisError:
            continue  # stream not created yet
        for info in groups:
            if info.get("name") in (group, group.encode()):
                pending += int(info.get("pending") or 0)
                lag += int(info.get("lag") or 0)
    return {"pending": pending, "unread": lag}


@router.get("/stats", summary="Tick counters and rates", dependencies=[Depends(require_user)])
async def stats(
    redis: RedisDep, settings: SettingsDep, sampler: SamplerDep, hub: HubDep, pool: PoolDep
) -> dict[str, Any]:
    """Cumulative counters (received, published, stored) across every process, rates over the
    last ten seconds, and per-feed detail."""
    now = time.time()
    try:
        counters = await sampler.sample()
        reports = await read_reports(redis, settings)
    except (RedisError, OSError) as exc:
        from fastapi import HTTPException

        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    last_tick = max((r.last_tick_at for r in reports if r.last_tick_at), default=None)
    try:
        gaps: dict[str, int] | None = await gap_summary(pool)
    except DATABASE_ERRORS:
        gaps = None  # the database is down: /health says so; the counters above still hold
    return {
        "ticks": {
            "received": counters.get("received", 0),
            "published": counters.get("published", 0),
            "stored": counters.get("stored", 0),
            "dropped": _per_process(reports, "dropped"),
            "spilled": _per_process(reports, "spilled"),
            "replayed": _per_process(reports, "replayed"),
            "spill_backlog": _per_process(reports, "spill_backlog"),
        },
        "rate_per_second": sampler.rates(),
        "last_tick_time": last_tick,
        "last_tick_age_seconds": round(now - last_tick, 3) if last_tick else None,
        "feeds": {
            r.name: {"ticks_received": r.ticks_received, **_feed_view(r, now)} for r in reports
        },
        "redis": await redis_state(redis, settings),
        "websocket": {
            "clients": len(hub.clients),
            "delivered": hub.delivered,
            "disconnected_slow": hub.disconnected_slow,
        },
        "gaps": gaps,
    }

"""Market data over REST: tracked symbols and latest quotes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, HTTPException, Query
from redis.exceptions import RedisError

from marketpulse.api.deps import RedisDep, SettingsDep
from marketpulse.bus.market_data import MarketDataRepository
from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.subscriptions import read_subscriptions

router = APIRouter(tags=["market data"])

MAX_QUOTE_SYMBOLS = 500


@router.get("/symbols", summary="Symbols the running feeds stream")
async def symbols(redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    try:
        subs = await read_subscriptions(redis, settings)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    items = [msgspec.structs.asdict(s) for s in sorted(subs, key=lambda s: s.symbol)]
    return {"count": len(items), "symbols": items}


@router.get("/api/quotes", summary="Latest snapshot for each symbol")
async def quotes(
    redis: RedisDep,
    settings: SettingsDep,
    symbols: Annotated[
        str, Query(description="comma-separated symbols, e.g. RELIANCE.NSE,INFY.NSE")
    ],
) -> dict[str, Any]:
    """The freshest snapshot of each symbol in any mode; symbols with none are listed in
    ``missing``. Invalid symbols are a 422 that names them."""
    wanted: list[str] = []
    bad: list[str] = []
    for raw in symbols.split(","):
        if not raw.strip():
            continue
        try:
            wanted.append(normalize_symbol(raw))
        except SymbolError as exc:
            bad.append(str(exc))
    if bad:
        raise HTTPException(422, bad)
    if not wanted:
        raise HTTPException(422, "no symbols given; pass ?symbols=RELIANCE.NSE,INFY.NSE")
    if len(wanted) > MAX_QUOTE_SYMBOLS:
        raise HTTPException(422, f"at most {MAX_QUOTE_SYMBOLS} symbols per request")
    wanted = list(dict.fromkeys(wanted))
    try:
        latest = await MarketDataRepository(redis, settings).latest_many(wanted)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    return {
        "quotes": {s: msgspec.to_builtins(latest[s]) for s in wanted if s in latest},
        "missing": [s for s in wanted if s not in latest],
    }

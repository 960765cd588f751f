"""Market data over REST: tracked symbols and latest quotes."""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query
from redis.exceptions import RedisError

from marketpulse.api.deps import QuotesDep, RedisDep, SettingsDep
from marketpulse.api.security import require_user
from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.quote_service import QuoteAnswer, QuoteErrorKind
from marketpulse.subscriptions import read_subscriptions

router = APIRouter(tags=["market data"], dependencies=[Depends(require_user)])

MAX_QUOTE_SYMBOLS = 500


@router.get("/symbols", summary="Symbols the running feeds stream")
async def symbols(redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    try:
        subs = await read_subscriptions(redis, settings)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis unavailable: {exc}") from exc
    items = [msgspec.structs.asdict(s) for s in sorted(subs, key=lambda s: s.symbol)]
    return {"count": len(items), "symbols": items}


def _parse_symbols(symbols: str, *, indices: bool = False) -> list[str]:
    """Canonical, de-duplicated symbols of a comma-separated query; 422 naming the bad ones."""
    wanted: list[str] = []
    bad: list[str] = []
    for raw in symbols.split(","):
        if not raw.strip():
            continue
        try:
            symbol = normalize_symbol(raw)
        except SymbolError as exc:
            bad.append(str(exc))
            continue
        if indices and not symbol.endswith("_INDEX"):
            bad.append(f"{raw.strip()} is not an index (for example NIFTY50.NSE, SENSEX.BSE)")
            continue
        wanted.append(symbol)
    if bad:
        raise HTTPException(422, bad)
    if not wanted:
        example = "NIFTY50.NSE,SENSEX.BSE" if indices else "RELIANCE.NSE,INFY.NSE"
        raise HTTPException(422, f"no symbols given; pass ?symbols={example}")
    if len(wanted) > MAX_QUOTE_SYMBOLS:
        raise HTTPException(422, f"at most {MAX_QUOTE_SYMBOLS} symbols per request")
    return list(dict.fromkeys(wanted))


def _respond(answer: QuoteAnswer) -> dict[str, Any]:
    """The response body; when no symbol has a price and the cause is the providers, the
    status says so (429 with Retry-After, 503) instead of an empty 200."""
    if not answer.quotes and answer.errors:
        kinds = {e.kind for e in answer.errors.values()}
        first = next(iter(answer.errors.values()))
        if kinds == {QuoteErrorKind.RATE_LIMIT}:
            retry = max((e.retry_after or 1.0) for e in answer.errors.values())
            raise HTTPException(429, str(first), headers={"Retry-After": str(ceil(retry))})
        if kinds <= {QuoteErrorKind.AUTH, QuoteErrorKind.PROVIDER_DOWN}:
            raise HTTPException(503, [str(e) for e in dict.fromkeys(answer.errors.values())])
    body: dict[str, Any] = {
        "quotes": {s: q.to_builtins() for s, q in answer.quotes.items()},
        "missing": answer.missing,
    }
    if answer.errors:
        body["errors"] = {s: e.to_builtins() for s, e in answer.errors.items()}
    if answer.warnings:
        body["warnings"] = answer.warnings
    return body


@router.get("/api/quotes", summary="Current price of each symbol, live or from the provider")
async def quotes(
    service: QuotesDep,
    symbols: Annotated[
        str, Query(description="comma-separated symbols, e.g. RELIANCE.NSE,INFY.NSE")
    ],
) -> dict[str, Any]:
    """The live snapshot when it is younger than ``MARKET_DATA_CACHE_DURATION``, else the
    provider's REST quote (cached as long). Each quote has ``origin`` (``live``/``rest``),
    ``age_seconds`` and ``stale`` (older than ``MARKET_DATA_STALE_THRESHOLD``). Symbols without
    any price are listed in ``missing`` with the reason in ``errors``. Invalid symbols are a 422
    that names them."""
    return _respond(await service.get_symbol_prices(_parse_symbols(symbols)))


@router.get("/api/indices", summary="Current level of each index")
async def indices(
    service: QuotesDep,
    symbols: Annotated[
        str, Query(description="comma-separated indices, e.g. NIFTY50.NSE,SENSEX.BSE,^NSEI")
    ],
) -> dict[str, Any]:
    """Like ``/api/quotes``, for indices only; a symbol that is not an index is a 422."""
    return _respond(await service.get_market_indices(_parse_symbols(symbols, indices=True)))

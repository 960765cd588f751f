"""Persisted subscriptions over REST: ``/api/instruments/subscribe``, ``/unsubscribe`` and
``/subscriptions/list``.

Instruments are named by canonical symbols or by a provider's tokens (resolved through the
instrument master's ``instrument_providers``). A change is written to the ``subscriptions``
table first — so it is restored whenever an ingest process starts — and then sent to the
running feeds over Redis; with no ingest running it is only persisted and applied at the next
start.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

import msgspec
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from marketpulse.api.deps import PoolDep, RedisDep, SettingsDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.api.subscription_changes import (
    SubscriptionAction,
    dispatch_change,
    normalise_symbols,
    persist_change,
    reported_feeds,
)
from marketpulse.config import Settings
from marketpulse.feeds.registry import FEEDS
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.subscriptions import ProviderToken, list_subscriptions, resolve_tokens

router = APIRouter(prefix="/api/instruments", tags=["subscriptions"])

ModeName = Literal["ltp", "quote", "full"]
_PRINTABLE = r"^[\x21-\x7e][\x20-\x7e]*$"  # provider names and tokens: printable ASCII


class TokenRef(BaseModel):
    """An instrument as a provider names it."""

    provider: str = Field(min_length=1, max_length=64, pattern=_PRINTABLE, examples=["kite"])
    token: str = Field(min_length=1, max_length=64, pattern=_PRINTABLE, examples=["738561"])
    exchange: str | None = Field(
        None,
        max_length=32,
        pattern=_PRINTABLE,
        description="needed when the token exists on several exchanges",
    )


class InstrumentSubscriptionRequest(BaseModel):
    """Exactly one of ``symbols`` or ``tokens``."""

    symbols: list[str] | None = Field(
        None, min_length=1, max_length=5000, examples=[["RELIANCE.NSE", "NSE:TCS"]]
    )
    tokens: list[TokenRef] | None = Field(None, min_length=1, max_length=5000)
    mode: ModeName = "full"
    feed: str | None = Field(None, description="one feed; default: every feed")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"symbols": ["RELIANCE.NSE", "^NSEI"], "mode": "quote"},
                {"tokens": [{"provider": "kite", "token": "738561", "exchange": "NSE"}]},
            ]
        }
    }

    @model_validator(mode="after")
    def _one_way_of_naming(self) -> Self:
        if (self.symbols is None) == (self.tokens is None):
            raise ValueError("give either symbols or tokens (exactly one of them)")
        if self.feed is not None and self.feed not in FEEDS:
            raise ValueError(f"unknown feed {self.feed!r}; available: {', '.join(sorted(FEEDS))}")
        return self


async def _symbols_of(body: InstrumentSubscriptionRequest, pool: Any) -> list[str]:
    if body.symbols is not None:
        return normalise_symbols(body.symbols)
    assert body.tokens is not None
    tokens = [ProviderToken(t.provider, t.token, t.exchange) for t in body.tokens]
    try:
        resolution = await resolve_tokens(pool, tokens)
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    if resolution.problems:
        raise HTTPException(422, resolution.problems)
    return resolution.symbols


async def _change(
    action: SubscriptionAction,
    body: InstrumentSubscriptionRequest,
    redis: Any,
    settings: Settings,
    pool: Any,
) -> dict[str, Any]:
    symbols = await _symbols_of(body, pool)
    running = await reported_feeds(redis, settings, fresh=True)
    feeds = [f for f in running if body.feed is None or f == body.feed]
    await persist_change(pool, action, symbols, body.mode, body.feed)
    answer: dict[str, Any] = {"action": action, "symbols": symbols, "mode": body.mode,
                              "feed": body.feed, "feeds": feeds}  # fmt: skip
    if not feeds:
        # Persisted: the feed subscribes them when an ingest process starts it.
        return answer | {"command_id": None, "status": "persisted"}
    command = await dispatch_change(redis, settings, action, symbols, body.mode, body.feed, feeds)
    return answer | {"command_id": command.id, "status": "pending"}


@router.post(
    "/subscribe",
    status_code=202,
    summary="Subscribe instruments (persisted, applied to the running feeds)",
    responses={422: {"description": "bad symbol, unknown token or feed"},
               503: {"description": "Redis or PostgreSQL unavailable"}},
)  # fmt: skip
async def subscribe_instruments(
    body: InstrumentSubscriptionRequest,
    redis: RedisDep,
    settings: SettingsDep,
    pool: PoolDep,
    _: AdminUser,
) -> dict[str, Any]:
    """Writes the ``subscriptions`` table, then tells the running feeds; ``command_id`` is
    followed with ``GET /subscribe/{command_id}``. ``status`` is ``persisted`` when no ingest
    process runs the feed: it subscribes them when it starts."""
    return await _change("subscribe", body, redis, settings, pool)


@router.post(
    "/unsubscribe",
    status_code=202,
    summary="Unsubscribe instruments",
    responses={422: {"description": "bad symbol, unknown token or feed"},
               503: {"description": "Redis or PostgreSQL unavailable"}},
)  # fmt: skip
async def unsubscribe_instruments(
    body: InstrumentSubscriptionRequest,
    redis: RedisDep,
    settings: SettingsDep,
    pool: PoolDep,
    _: AdminUser,
) -> dict[str, Any]:
    """Removes the rows (for ``feed``, or for every feed when it is not given) and stops the
    running feeds streaming them."""
    return await _change("unsubscribe", body, redis, settings, pool)


@router.get("/subscriptions/list", summary="Persisted subscriptions, paged")
async def subscriptions_list(
    pool: PoolDep,
    _: CurrentUser,
    feed: Annotated[
        str | None, Query(max_length=64, pattern=_PRINTABLE, description="rows for this feed")
    ] = None,
    mode: Annotated[ModeName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    """Rows ordered by symbol; ``feed`` null means every feed. ``source`` is ``api``,
    ``settings`` (``SUBSCRIBE``) or ``file`` (``SYMBOLS_FILE``)."""
    try:
        total, rows = await list_subscriptions(pool, feed=feed, mode=mode, limit=limit,
                                               offset=offset)  # fmt: skip
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    return {"total": total, "limit": limit, "offset": offset,
            "items": msgspec.to_builtins(rows)}  # fmt: skip

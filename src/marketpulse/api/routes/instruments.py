"""Instruments over REST: list/filter/paginate, search, lookups, create/update/deactivate,
sector assignment, provider mappings and the instrument-master sync job.

Literal paths (``search``, ``by-symbol``, ``by-token``, ``sync``) are declared before the
``{instrument_id:int}`` routes, and the int convertor means no literal path (including
``/api/instruments/subscribe`` and friends, served elsewhere) can be taken for an id.
Pagination is limit/offset in symbol order, with the filtered ``total``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.api.deps import PoolDep, SessionDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.reference import instruments as repo
from marketpulse.reference.errors import http_errors
from marketpulse.reference.exchanges import CODE_PATTERN
from marketpulse.reference.fields import NO_NUL, PlainText, patch_values
from marketpulse.reference.search import SearchFilter, search_instruments
from marketpulse.reference.sync_jobs import SyncJobs, read_job

router = APIRouter(tags=["instruments"])

PROVIDER_PATTERN = r"^[a-z][a-z0-9_\-]{0,39}$"
TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,15}$"
ISIN_PATTERN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"
MAX_BIGINT = 2**63 - 1

InstrumentId = Annotated[int, Path(ge=1, le=MAX_BIGINT, examples=[1])]
ProviderName = Annotated[str, Path(pattern=PROVIDER_PATTERN, examples=["kite"])]
LotSize = Annotated[int, Field(ge=1, le=2**31 - 1, examples=[1])]
TickSize = Annotated[Decimal, Field(gt=0, lt=1_000_000, decimal_places=6, examples=[0.05])]
Strike = Annotated[Decimal, Field(ge=0, lt=10**12, decimal_places=4, examples=[24500])]
Token = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL, examples=["738561"])]


def _jobs(request: Request) -> SyncJobs:
    return cast(SyncJobs, request.app.state.instrument_syncs)


JobsDep = Annotated[SyncJobs, Depends(_jobs)]


class InstrumentIn(BaseModel):
    """A new instrument; its exchange is the symbol's suffix."""

    symbol: str = Field(
        min_length=3,
        max_length=64,
        pattern=NO_NUL,
        examples=["RELIANCE.NSE"],
        description="canonical NAME.EXCHANGE (NSE:RELIANCE is accepted too)",
    )
    exchange: str | None = Field(None, pattern=CODE_PATTERN, examples=["NSE"])
    name: PlainText | None = Field(None, max_length=200, examples=["Reliance Industries"])
    instrument_type: str = Field("EQ", pattern=TYPE_PATTERN, examples=["EQ"])
    lot_size: LotSize = 1
    tick_size: TickSize = Decimal("0.05")
    expiry: date | None = Field(None, examples=[None])
    strike: Strike | None = None
    isin: str | None = Field(None, pattern=ISIN_PATTERN, examples=["INE002A01018"])
    active: bool = True
    sector_id: int | None = Field(None, ge=1, le=MAX_BIGINT, examples=[1])


class InstrumentPatch(BaseModel):
    """Descriptive fields to change; symbol and exchange never change."""

    name: PlainText | None = Field(None, max_length=200, examples=["Reliance Industries Ltd"])
    instrument_type: str | None = Field(None, pattern=TYPE_PATTERN, examples=["EQ"])
    lot_size: LotSize | None = None
    tick_size: TickSize | None = None
    expiry: date | None = Field(None, examples=["2026-12-31"])
    strike: Strike | None = None
    isin: str | None = Field(None, pattern=ISIN_PATTERN, examples=["INE002A01018"])
    active: bool | None = Field(None, examples=[True])
    sector_id: int | None = Field(None, ge=1, le=MAX_BIGINT, examples=[1])

    @model_validator(mode="after")
    def _no_nulls(self) -> InstrumentPatch:
        patch_values(self, _NULLABLE)
        return self


_NULLABLE = frozenset({"name", "expiry", "strike", "isin", "sector_id"})


class InstrumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    symbol: str = Field(examples=["RELIANCE.NSE"])
    exchange: str = Field(examples=["NSE"])
    name: str | None = Field(examples=["Reliance Industries"])
    instrument_type: str = Field(examples=["EQ"])
    lot_size: int = Field(examples=[1])
    tick_size: float = Field(examples=[0.05])
    expiry: date | None = Field(examples=[None])
    strike: float | None = Field(examples=[None])
    isin: str | None = Field(examples=["INE002A01018"])
    active: bool = Field(examples=[True])
    sector_id: int | None = Field(examples=[1])
    created_at: datetime
    updated_at: datetime


class InstrumentPage(BaseModel):
    total: int = Field(examples=[1057], description="rows matching the filters")
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    items: list[InstrumentOut]


class SearchResultOut(BaseModel):
    instrument: InstrumentOut
    match: str = Field(
        examples=["symbol_prefix"],
        description="exact | symbol_prefix | name_prefix | fuzzy | substring",
    )
    score: float = Field(examples=[1.0], description="1 for exact/prefix, else similarity")


class SearchOut(BaseModel):
    query: str = Field(examples=["relia"])
    count: int = Field(examples=[2])
    results: list[SearchResultOut]


class MappingIn(BaseModel):
    provider: str = Field(pattern=PROVIDER_PATTERN, examples=["kite"])
    token: Token
    exchange: str | None = Field(
        None,
        pattern=CODE_PATTERN,
        examples=["NSE"],
        description="default: the instrument's exchange",
    )
    broker_symbol: PlainText | None = Field(None, max_length=100, examples=["RELIANCE"])


class MappingPatch(BaseModel):
    token: Token | None = None
    exchange: str | None = Field(None, pattern=CODE_PATTERN, examples=["NSE"])
    broker_symbol: PlainText | None = Field(None, max_length=100, examples=["RELIANCE-EQ"])

    @model_validator(mode="after")
    def _no_nulls(self) -> MappingPatch:
        patch_values(self, {"broker_symbol"})
        return self


class MappingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    instrument_id: int = Field(examples=[1])
    provider: str = Field(examples=["kite"])
    exchange: str = Field(examples=["NSE"])
    token: str = Field(examples=["738561"])
    broker_symbol: str | None = Field(examples=["RELIANCE"])


class TokenLookupOut(BaseModel):
    instrument: InstrumentOut
    mapping: MappingOut


class SectorAssignment(BaseModel):
    sector_id: int | None = Field(
        ge=1, le=MAX_BIGINT, examples=[1], description="null removes the instrument from its sector"
    )


class SyncIn(BaseModel):
    provider: str = Field(pattern=PROVIDER_PATTERN, examples=["kite"])


class SyncStarted(BaseModel):
    id: str = Field(examples=["5b0f1c7e-8c1a-4f0e-9a55-0d6f8f1f2a10"])
    state: str = Field(examples=["pending"])
    url: str = Field(examples=["/api/instruments/sync/5b0f1c7e-8c1a-4f0e-9a55-0d6f8f1f2a10"])


class SyncResult(BaseModel):
    added: int = Field(examples=[1057])
    changed: int = Field(examples=[0])
    unchanged: int = Field(examples=[0])
    removed: int = Field(examples=[0])
    collisions: list[str] = Field(examples=[[]], description="at most 100 are kept")


class SyncJobOut(BaseModel):
    id: str = Field(examples=["5b0f1c7e-8c1a-4f0e-9a55-0d6f8f1f2a10"])
    provider: str = Field(examples=["kite"])
    state: str = Field(
        examples=["writing"], description="pending | downloading | writing | succeeded | failed"
    )
    rows_done: int = Field(examples=[1000])
    rows_total: int | None = Field(examples=[1057])
    result: SyncResult | None
    error: str | None = Field(examples=[None])
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


# ---------------------------------------------------------------- literal paths first


@router.get(
    "/api/instruments",
    summary="List instruments (filters, limit/offset)",
    response_model=InstrumentPage,
)
async def list_instruments(
    session: SessionDep,
    _: CurrentUser,
    exchange: Annotated[str | None, Query(pattern=CODE_PATTERN, examples=["NSE"])] = None,
    type: Annotated[str | None, Query(pattern=TYPE_PATTERN, examples=["FUT"])] = None,
    sector: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, examples=["Banking"])
    ] = None,
    sector_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    expiry: Annotated[date | None, Query(examples=["2026-12-29"])] = None,
    expiry_from: Annotated[date | None, Query()] = None,
    expiry_to: Annotated[date | None, Query()] = None,
    active: Annotated[bool | None, Query(examples=[True])] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    filters = repo.InstrumentFilter(
        exchange, type, sector, sector_id, expiry, expiry_from, expiry_to, active
    )
    items, total = await repo.list_instruments(session, filters, limit=limit, offset=offset)
    return InstrumentPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[InstrumentOut.model_validate(i) for i in items],
    )


@router.post(
    "/api/instruments",
    status_code=201,
    summary="Create an instrument",
    response_model=InstrumentOut,
)
async def create_instrument(body: InstrumentIn, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return await repo.create_instrument(session, body.model_dump())


@router.get(
    "/api/instruments/search",
    summary="Search by symbol and name (prefix + fuzzy)",
    response_model=SearchOut,
)
async def search(
    session: SessionDep,
    _: CurrentUser,
    q: Annotated[str, Query(min_length=1, max_length=100, pattern=NO_NUL, examples=["relia"])],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    exchange: Annotated[str | None, Query(pattern=CODE_PATTERN, examples=["NSE"])] = None,
    type: Annotated[str | None, Query(pattern=TYPE_PATTERN, examples=["EQ"])] = None,
    status: Annotated[
        Literal["active", "inactive", "all"], Query(description="which instruments to search")
    ] = "active",
) -> Any:
    active = {"active": True, "inactive": False, "all": None}[status]
    hits = await search_instruments(
        session, q, limit=limit, filters=SearchFilter(exchange, type, active)
    )
    return SearchOut(
        query=q,
        count=len(hits),
        results=[
            SearchResultOut(
                instrument=InstrumentOut.model_validate(h.instrument),
                match=h.match,
                score=round(h.score, 4),
            )
            for h in hits
        ],
    )


@router.get(
    "/api/instruments/by-symbol/{symbol}",
    summary="Instrument by canonical symbol",
    response_model=InstrumentOut,
)
async def by_symbol(
    symbol: Annotated[str, Path(max_length=64, pattern=NO_NUL, examples=["RELIANCE.NSE"])],
    session: SessionDep,
    _: CurrentUser,
) -> Any:
    with http_errors():
        return await repo.get_by_symbol(session, symbol)


@router.get(
    "/api/instruments/by-token",
    summary="Instrument by a provider's token",
    response_model=TokenLookupOut,
)
async def by_token(
    session: SessionDep,
    _: CurrentUser,
    provider: Annotated[str, Query(pattern=PROVIDER_PATTERN, examples=["kite"])],
    token: Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL, examples=["738561"])],
    exchange: Annotated[str | None, Query(pattern=CODE_PATTERN, examples=["NSE"])] = None,
) -> Any:
    with http_errors():
        instrument, mapping = await repo.get_by_token(session, provider, token, exchange)
    return TokenLookupOut(
        instrument=InstrumentOut.model_validate(instrument),
        mapping=MappingOut.model_validate(mapping),
    )


@router.post(
    "/api/instruments/sync",
    status_code=202,
    summary="Start a provider's instrument-master sync (background job)",
    response_model=SyncStarted,
)
async def start_sync(body: SyncIn, jobs: JobsDep, _: AdminUser) -> Any:
    with http_errors():
        job_id = await jobs.start(body.provider)
    return SyncStarted(id=str(job_id), state="pending", url=f"/api/instruments/sync/{job_id}")


@router.get(
    "/api/instruments/sync/{job_id}",
    summary="Progress and result of a sync job",
    response_model=SyncJobOut,
)
async def sync_status(job_id: uuid.UUID, pool: PoolDep, _: CurrentUser) -> Any:
    job = await read_job(pool, job_id)
    if job is None:
        raise HTTPException(404, f"no instrument sync job {job_id}")
    return job


# ---------------------------------------------------------------- /{instrument_id:int}


@router.get(
    "/api/instruments/{instrument_id:int}", summary="Instrument by id", response_model=InstrumentOut
)
async def get_instrument(instrument_id: InstrumentId, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        return await repo.get_instrument(session, instrument_id)


@router.patch(
    "/api/instruments/{instrument_id:int}",
    summary="Update an instrument",
    response_model=InstrumentOut,
)
async def update_instrument(
    instrument_id: InstrumentId, body: InstrumentPatch, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.update_instrument(session, instrument_id, patch_values(body, _NULLABLE))


@router.delete(
    "/api/instruments/{instrument_id:int}",
    summary="Deactivate an instrument (rows are never deleted)",
    response_model=InstrumentOut,
)
async def deactivate_instrument(
    instrument_id: InstrumentId, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.deactivate_instrument(session, instrument_id)


@router.put(
    "/api/instruments/{instrument_id:int}/sector",
    summary="Set or clear the sector",
    response_model=InstrumentOut,
)
async def set_sector(
    instrument_id: InstrumentId, body: SectorAssignment, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.set_sector(session, instrument_id, body.sector_id)


@router.get(
    "/api/instruments/{instrument_id:int}/providers",
    summary="Provider mappings",
    response_model=list[MappingOut],
)
async def list_mappings(instrument_id: InstrumentId, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        return await repo.list_mappings(session, instrument_id)


@router.post(
    "/api/instruments/{instrument_id:int}/providers",
    status_code=201,
    summary="Map the instrument for a provider",
    response_model=MappingOut,
)
async def add_mapping(
    instrument_id: InstrumentId, body: MappingIn, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.add_mapping(session, instrument_id, body.model_dump())


@router.patch(
    "/api/instruments/{instrument_id:int}/providers/{provider}",
    summary="Change a provider mapping",
    response_model=MappingOut,
)
async def update_mapping(
    instrument_id: InstrumentId,
    provider: ProviderName,
    body: MappingPatch,
    session: SessionDep,
    _: AdminUser,
) -> Any:
    with http_errors():
        changes = patch_values(body, {"broker_symbol"})
        return await repo.update_mapping(session, instrument_id, provider, changes)


@router.delete(
    "/api/instruments/{instrument_id:int}/providers/{provider}",
    status_code=204,
    summary="Remove a provider mapping",
)
async def delete_mapping(
    instrument_id: InstrumentId, provider: ProviderName, session: SessionDep, _: AdminUser
) -> Response:
    with http_errors():
        await repo.delete_mapping(session, instrument_id, provider)
    return Response(status_code=204)

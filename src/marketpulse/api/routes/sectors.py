"""Sectors over REST: CRUD and bulk assignment (``POST /api/sectors/{id}/instruments``).

One instrument's sector can also be set with ``PUT /api/instruments/{id}/sector``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.api.deps import SessionDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.reference import sectors as repo
from marketpulse.reference.errors import http_errors
from marketpulse.reference.fields import PlainText, patch_values

router = APIRouter(tags=["sectors"])

SectorId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]


class SectorIn(BaseModel):
    name: PlainText = Field(min_length=1, max_length=100, examples=["Banking"])
    description: PlainText | None = Field(None, max_length=1000, examples=["Banks and NBFCs"])


class SectorPatch(BaseModel):
    name: PlainText | None = Field(None, min_length=1, max_length=100, examples=["Private Banks"])
    description: PlainText | None = Field(None, max_length=1000, examples=["Private sector banks"])

    @model_validator(mode="after")
    def _no_nulls(self) -> SectorPatch:
        patch_values(self, nullable={"description"})
        return self


class SectorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    name: str = Field(examples=["Banking"])
    description: str | None = Field(examples=["Banks and NBFCs"])
    instruments: int = Field(0, examples=[12], description="instruments in the sector")
    created_at: datetime
    updated_at: datetime


class AssignIn(BaseModel):
    instrument_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        min_length=1, max_length=10_000, examples=[[1, 2, 3]]
    )


class AssignOut(BaseModel):
    sector_id: int = Field(examples=[1])
    assigned: int = Field(examples=[3], description="instruments named in the request")
    instruments: int = Field(examples=[15], description="instruments in the sector now")


def _out(sector: Any, instruments: int) -> SectorOut:
    out = SectorOut.model_validate(sector)
    out.instruments = instruments
    return out


@router.get("/api/sectors", summary="List sectors", response_model=list[SectorOut])
async def list_sectors(session: SessionDep, _: CurrentUser) -> Any:
    return [_out(sector, n) for sector, n in await repo.list_sectors(session)]


@router.post("/api/sectors", status_code=201, summary="Create a sector", response_model=SectorOut)
async def create_sector(body: SectorIn, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return _out(await repo.create_sector(session, body.model_dump()), 0)


@router.get("/api/sectors/{sector_id}", summary="One sector", response_model=SectorOut)
async def get_sector(sector_id: SectorId, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        sector = await repo.get_sector(session, sector_id)
        return _out(sector, await repo.count_instruments(session, sector_id))


@router.patch("/api/sectors/{sector_id}", summary="Rename or describe", response_model=SectorOut)
async def update_sector(
    sector_id: SectorId, body: SectorPatch, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        sector = await repo.update_sector(session, sector_id, patch_values(body, {"description"}))
        return _out(sector, await repo.count_instruments(session, sector_id))


@router.delete(
    "/api/sectors/{sector_id}",
    status_code=204,
    summary="Delete a sector (its instruments become unassigned)",
)
async def delete_sector(sector_id: SectorId, session: SessionDep, _: AdminUser) -> Response:
    with http_errors():
        await repo.delete_sector(session, sector_id)
    return Response(status_code=204)


@router.post(
    "/api/sectors/{sector_id}/instruments",
    summary="Assign instruments to the sector",
    response_model=AssignOut,
)
async def assign_instruments(
    sector_id: SectorId, body: AssignIn, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        total = await repo.assign_instruments(session, sector_id, body.instrument_ids)
    return AssignOut(sector_id=sector_id, assigned=len(set(body.instrument_ids)), instruments=total)

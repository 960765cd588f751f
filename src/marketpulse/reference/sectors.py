"""Sectors and which instruments belong to them (``instruments.sector_id``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.reference.errors import ConflictError, NotFoundError
from marketpulse.reference.models import Instrument, Sector


async def list_sectors(session: AsyncSession) -> list[tuple[Sector, int]]:
    """Every sector with its number of instruments, by name."""
    counts = (
        select(Instrument.sector_id, func.count().label("n"))
        .group_by(Instrument.sector_id)
        .subquery()
    )
    rows = await session.execute(
        select(Sector, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.sector_id == Sector.id)
        .order_by(Sector.name)
    )
    return [(sector, int(n)) for sector, n in rows]


async def get_sector(session: AsyncSession, sector_id: int) -> Sector:
    sector = await session.get(Sector, sector_id)
    if sector is None:
        raise NotFoundError(f"no sector {sector_id}")
    return sector


async def count_instruments(session: AsyncSession, sector_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Instrument).where(Instrument.sector_id == sector_id)
        )
        or 0
    )


async def _check_name_free(session: AsyncSession, name: str, own_id: int | None = None) -> None:
    clash = await session.scalar(select(Sector).where(func.lower(Sector.name) == name.lower()))
    if clash is not None and clash.id != own_id:
        raise ConflictError(f"sector {clash.name!r} already exists (id {clash.id})")


async def create_sector(session: AsyncSession, values: Mapping[str, Any]) -> Sector:
    """Names are unique, compared without case (so "Banking" and "banking" cannot both exist)."""
    await _check_name_free(session, values["name"])
    sector = Sector(**values)
    session.add(sector)
    await session.commit()
    await session.refresh(sector)
    return sector


async def update_sector(
    session: AsyncSession, sector_id: int, changes: Mapping[str, Any]
) -> Sector:
    sector = await get_sector(session, sector_id)
    if "name" in changes:
        await _check_name_free(session, changes["name"], sector_id)
    for key, value in changes.items():
        setattr(sector, key, value)
    await session.commit()
    await session.refresh(sector)
    return sector


async def delete_sector(session: AsyncSession, sector_id: int) -> None:
    """Delete a sector; its instruments stay, unassigned (``ON DELETE SET NULL``)."""
    sector = await get_sector(session, sector_id)
    await session.delete(sector)
    await session.commit()


async def assign_instruments(
    session: AsyncSession, sector_id: int, instrument_ids: Sequence[int]
) -> int:
    """Put the instruments in the sector (moving them from any other); all ids must exist, or
    nothing changes. Returns how many instruments the sector now has."""
    await get_sector(session, sector_id)
    wanted = set(instrument_ids)
    found = set(
        (await session.scalars(select(Instrument.id).where(Instrument.id.in_(wanted)))).all()
    )
    missing = sorted(wanted - found)
    if missing:
        raise NotFoundError(f"no instruments with ids {', '.join(map(str, missing))}")
    await session.execute(
        update(Instrument)
        .where(Instrument.id.in_(wanted))
        .values(sector_id=sector_id, updated_at=func.now())
    )
    await session.commit()
    return await count_instruments(session, sector_id)

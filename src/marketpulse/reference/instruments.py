"""Instruments: filtered listing, lookups (id, canonical symbol, provider token), create,
update, deactivate, sector assignment and provider mappings.

``instruments sync`` (``store.instruments``) writes the same tables in bulk from broker
masters; the functions here are the one-row administrative path and enforce the same rules:
one mapping per (instrument, provider) and one instrument per (provider, exchange, token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.reference.errors import ConflictError, InvalidError, NotFoundError
from marketpulse.reference.models import Exchange, Instrument, InstrumentProvider, Sector

_PLAIN_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9&_\-]{0,39}\.[A-Z][A-Z0-9_]{1,19}$")


def canonical_symbol(text: str) -> str:
    """The canonical ``NAME.EXCHANGE`` form of ``text``.

    Known exchanges accept every spelling ``model.parse_symbol`` does (``NSE:RELIANCE``,
    ``^NSEI``); exchanges added through the API are not in that enum, so for them only the
    canonical spelling itself is accepted.
    """
    try:
        return normalize_symbol(text)
    except SymbolError as exc:
        raw = text.strip().upper()
        if _PLAIN_SYMBOL.fullmatch(raw):
            return raw
        raise InvalidError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class InstrumentFilter:
    """List filters; ``None`` means "any". ``sector`` is a sector name (case-insensitive)."""

    exchange: str | None = None
    instrument_type: str | None = None
    sector: str | None = None
    sector_id: int | None = None
    expiry: date | None = None
    expiry_from: date | None = None
    expiry_to: date | None = None
    active: bool | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.exchange is not None:
            query = query.where(Instrument.exchange == self.exchange.upper())
        if self.instrument_type is not None:
            query = query.where(Instrument.instrument_type == self.instrument_type.upper())
        if self.sector is not None:
            query = query.where(
                Instrument.sector_id.in_(
                    select(Sector.id).where(func.lower(Sector.name) == self.sector.lower())
                )
            )
        if self.sector_id is not None:
            query = query.where(Instrument.sector_id == self.sector_id)
        if self.expiry is not None:
            query = query.where(Instrument.expiry == self.expiry)
        if self.expiry_from is not None:
            query = query.where(Instrument.expiry >= self.expiry_from)
        if self.expiry_to is not None:
            query = query.where(Instrument.expiry <= self.expiry_to)
        if self.active is not None:
            query = query.where(Instrument.active == self.active)
        return query


async def list_instruments(
    session: AsyncSession, filters: InstrumentFilter, *, limit: int, offset: int
) -> tuple[list[Instrument], int]:
    """One page in ``symbol`` order (stable under inserts elsewhere) and the filtered total."""
    total = await session.scalar(filters.apply(select(func.count()).select_from(Instrument)))
    rows = await session.scalars(
        filters.apply(select(Instrument)).order_by(Instrument.symbol).limit(limit).offset(offset)
    )
    return list(rows.all()), int(total or 0)


async def get_instrument(session: AsyncSession, instrument_id: int) -> Instrument:
    instrument = await session.get(Instrument, instrument_id)
    if instrument is None:
        raise NotFoundError(f"no instrument with id {instrument_id}")
    return instrument


async def get_by_symbol(session: AsyncSession, symbol: str) -> Instrument:
    canonical = canonical_symbol(symbol)
    instrument = await session.scalar(select(Instrument).where(Instrument.symbol == canonical))
    if instrument is None:
        raise NotFoundError(f"no instrument {canonical}")
    return instrument


async def get_by_token(
    session: AsyncSession, provider: str, token: str, exchange: str | None = None
) -> tuple[Instrument, InstrumentProvider]:
    """The instrument ``provider`` calls ``token``; a token listed on several exchanges needs
    ``exchange`` to pick one (422 lists them)."""
    query = (
        select(Instrument, InstrumentProvider)
        .join(InstrumentProvider, InstrumentProvider.instrument_id == Instrument.id)
        .where(InstrumentProvider.provider == provider, InstrumentProvider.token == token)
    )
    if exchange is not None:
        query = query.where(InstrumentProvider.exchange == exchange.upper())
    rows = [(i, m) for i, m in await session.execute(query)]
    if not rows:
        where = f" on {exchange.upper()}" if exchange else ""
        raise NotFoundError(f"{provider} has no instrument with token {token!r}{where}")
    if len(rows) > 1:
        listed = ", ".join(f"{m.exchange} ({i.symbol})" for i, m in rows)
        raise InvalidError(
            f"{provider} token {token!r} is listed on several exchanges: {listed}; "
            "pass exchange= to choose"
        )
    return rows[0]


async def _check_exchange(session: AsyncSession, code: str) -> None:
    if await session.get(Exchange, code) is None:
        raise InvalidError(f"exchange {code!r} does not exist; create it under /api/exchanges")


async def _check_sector(session: AsyncSession, sector_id: int | None) -> None:
    if sector_id is not None and await session.get(Sector, sector_id) is None:
        raise InvalidError(f"sector {sector_id} does not exist")


async def create_instrument(session: AsyncSession, values: Mapping[str, Any]) -> Instrument:
    """Insert an instrument. The exchange is the symbol's suffix (and must exist); a symbol that
    is already there is a 409 naming the existing row."""
    fields = dict(values)
    symbol = canonical_symbol(fields.pop("symbol"))
    exchange = symbol.rpartition(".")[2]
    given = fields.pop("exchange", None)
    if given is not None and given.upper() != exchange:
        raise InvalidError(f"symbol {symbol} is on {exchange}, not {given.upper()}")
    await _check_exchange(session, exchange)
    await _check_sector(session, fields.get("sector_id"))
    existing = await session.scalar(select(Instrument).where(Instrument.symbol == symbol))
    if existing is not None:
        raise ConflictError(f"instrument {symbol} already exists (id {existing.id})")
    if "instrument_type" in fields:
        fields["instrument_type"] = fields["instrument_type"].upper()
    instrument = Instrument(symbol=symbol, exchange=exchange, **fields)
    session.add(instrument)
    await session.commit()
    await session.refresh(instrument)
    return instrument


async def update_instrument(
    session: AsyncSession, instrument_id: int, changes: Mapping[str, Any]
) -> Instrument:
    """Partial update of the descriptive fields; symbol and exchange are the identity other
    tables key on (ticks, candles, subscriptions) and never change."""
    instrument = await get_instrument(session, instrument_id)
    if "sector_id" in changes:
        await _check_sector(session, changes["sector_id"])
    for key, value in changes.items():
        setattr(instrument, key, value.upper() if key == "instrument_type" else value)
    await session.commit()
    await session.refresh(instrument)
    return instrument


async def deactivate_instrument(session: AsyncSession, instrument_id: int) -> Instrument:
    """Mark inactive rather than delete: history and provider mappings stay addressable."""
    return await update_instrument(session, instrument_id, {"active": False})


async def set_sector(
    session: AsyncSession, instrument_id: int, sector_id: int | None
) -> Instrument:
    return await update_instrument(session, instrument_id, {"sector_id": sector_id})


async def list_mappings(session: AsyncSession, instrument_id: int) -> list[InstrumentProvider]:
    await get_instrument(session, instrument_id)
    rows = await session.scalars(
        select(InstrumentProvider)
        .where(InstrumentProvider.instrument_id == instrument_id)
        .order_by(InstrumentProvider.provider)
    )
    return list(rows.all())


async def _get_mapping(
    session: AsyncSession, instrument_id: int, provider: str
) -> InstrumentProvider:
    mapping = await session.scalar(
        select(InstrumentProvider).where(
            InstrumentProvider.instrument_id == instrument_id,
            InstrumentProvider.provider == provider,
        )
    )
    if mapping is None:
        raise NotFoundError(f"instrument {instrument_id} has no {provider} mapping")
    return mapping


async def _check_token_free(
    session: AsyncSession, provider: str, exchange: str, token: str, own_id: int | None
) -> None:
    clash = (
        await session.execute(
            select(InstrumentProvider, Instrument.symbol)
            .join(Instrument, Instrument.id == InstrumentProvider.instrument_id)
            .where(
                InstrumentProvider.provider == provider,
                InstrumentProvider.exchange == exchange,
                InstrumentProvider.token == token,
            )
        )
    ).first()
    if clash is not None and clash[0].id != own_id:
        raise ConflictError(
            f"{provider} token {exchange}:{token} is already mapped to {clash[1]} "
            f"(instrument {clash[0].instrument_id})"
        )


async def add_mapping(
    session: AsyncSession, instrument_id: int, values: Mapping[str, Any]
) -> InstrumentProvider:
    """Map the instrument for a provider. The exchange defaults to the instrument's (brokers
    may file it elsewhere, e.g. an index under NSE); both uniqueness rules are 409s."""
    instrument = await get_instrument(session, instrument_id)
    provider: str = values["provider"]
    exchange = (values.get("exchange") or instrument.exchange).upper()
    token: str = values["token"]
    existing = await session.scalar(
        select(InstrumentProvider).where(
            InstrumentProvider.instrument_id == instrument_id,
            InstrumentProvider.provider == provider,
        )
    )
    if existing is not None:
        raise ConflictError(
            f"{instrument.symbol} already has a {provider} mapping "
            f"(token {existing.exchange}:{existing.token}); update or delete it instead"
        )
    await _check_token_free(session, provider, exchange, token, None)
    mapping = InstrumentProvider(
        instrument_id=instrument_id, provider=provider, exchange=exchange, token=token,
        broker_symbol=values.get("broker_symbol"),
    )  # fmt: skip
    session.add(mapping)
    await session.commit()
    await session.refresh(mapping)
    return mapping


async def update_mapping(
    session: AsyncSession, instrument_id: int, provider: str, changes: Mapping[str, Any]
) -> InstrumentProvider:
    mapping = await _get_mapping(session, instrument_id, provider)
    exchange = (changes.get("exchange") or mapping.exchange).upper()
    token = changes.get("token") or mapping.token
    await _check_token_free(session, provider, exchange, token, mapping.id)
    mapping.exchange, mapping.token = exchange, token
    if "broker_symbol" in changes:
        mapping.broker_symbol = changes["broker_symbol"]
    await session.commit()
    await session.refresh(mapping)
    return mapping


async def delete_mapping(session: AsyncSession, instrument_id: int, provider: str) -> None:
    mapping = await _get_mapping(session, instrument_id, provider)
    await session.delete(mapping)
    await session.commit()

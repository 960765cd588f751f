"""Mapped classes for the reference-data tables (migrations 0001 and 0004 own the schema)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    Text,
    Time,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.store.orm import Base


class Exchange(Base):
    """A trading venue: regular session hours in its own timezone and its holiday dates."""

    __tablename__ = "exchanges"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    country: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    session_open: Mapped[time] = mapped_column(Time)
    session_close: Mapped[time] = mapped_column(Time)
    pre_open: Mapped[time | None] = mapped_column(Time)
    is_24h: Mapped[bool] = mapped_column(Boolean, default=False)
    holidays: Mapped[list[date]] = mapped_column(ARRAY(Date), default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SpecialSession(Base):
    """A one-day session outside the regular calendar (e.g. NSE muhurat trading on Diwali)."""

    __tablename__ = "exchange_special_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    exchange: Mapped[str] = mapped_column(Text, ForeignKey("exchanges.code", ondelete="CASCADE"))
    session_date: Mapped[date] = mapped_column(Date)
    session_open: Mapped[time] = mapped_column(Time)
    session_close: Mapped[time] = mapped_column(Time)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Sector(Base):
    """An instrument classification (``sectors``; ``instruments.sector_id`` points here)."""

    __tablename__ = "sectors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Instrument(Base):
    """One tradable instrument under its canonical ``NAME.EXCHANGE`` symbol."""

    __tablename__ = "instruments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text, unique=True)
    exchange: Mapped[str] = mapped_column(Text, ForeignKey("exchanges.code"))
    name: Mapped[str | None] = mapped_column(Text)
    instrument_type: Mapped[str] = mapped_column(Text, default="EQ")
    lot_size: Mapped[int] = mapped_column(Integer, default=1)
    tick_size: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal("0.05"))
    expiry: Mapped[date | None] = mapped_column(Date)
    strike: Mapped[Decimal | None] = mapped_column(Numeric(16, 4))
    isin: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sector_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sectors.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InstrumentProvider(Base):
    """How one provider names an instrument: its token on an exchange and its own symbol."""

    __tablename__ = "instrument_providers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("instruments.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(Text)
    exchange: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(Text)
    broker_symbol: Mapped[str | None] = mapped_column(Text)


class Provider(Base):
    """A market-data provider; ``credentials`` is SecretBox-encrypted JSON, never returned."""

    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, default="broker")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float(precision=24))
    credentials: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ExchangeProvider(Base):
    """Which providers serve an exchange, lower ``priority`` first."""

    __tablename__ = "exchange_providers"

    exchange: Mapped[str] = mapped_column(
        Text, ForeignKey("exchanges.code", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(
        Text, ForeignKey("providers.name", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[int] = mapped_column(Integer, default=0)

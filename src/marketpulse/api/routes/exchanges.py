"""Exchanges over REST: CRUD, the holiday calendar and special sessions.

Reads need a signed-in user (``CurrentUser``), writes an admin (``AdminUser``). Hours are
checked as a whole (open before close unless 24h), timezones against the IANA database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from marketpulse.api.deps import SessionDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.reference import exchanges as repo
from marketpulse.reference.errors import http_errors
from marketpulse.reference.fields import PlainText, WallTime, WallTimeOut, patch_values

router = APIRouter(tags=["exchanges"])

Code = Annotated[str, Path(pattern=repo.CODE_PATTERN, examples=["NSE"])]
Day = Annotated[date, Path(examples=["2026-11-08"])]


class ExchangeIn(BaseModel):
    """A new exchange."""

    code: str = Field(pattern=repo.CODE_PATTERN, examples=["XNSE"])
    name: PlainText = Field(min_length=1, max_length=200, examples=["National Stock Exchange"])
    timezone: str = Field(examples=["Asia/Kolkata"], description="IANA timezone")
    country: str = Field(pattern=r"^[A-Z]{2}$", examples=["IN"], description="ISO 3166 alpha-2")
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["INR"], description="ISO 4217")
    session_open: WallTime = Field(examples=["09:15:00"])
    session_close: WallTime = Field(examples=["15:30:00"])
    pre_open: WallTime | None = Field(None, examples=["09:00:00"])
    is_24h: bool = Field(False, examples=[False])
    holidays: list[date] = Field(default_factory=list, examples=[["2026-01-26"]])

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return repo.check_timezone(value)

    @model_validator(mode="after")
    def _hours(self) -> ExchangeIn:
        repo.check_hours(self.session_open, self.session_close, self.is_24h)
        return self


class ExchangePatch(BaseModel):
    """Fields to change; ``code`` is the key instruments refer to and cannot change."""

    name: PlainText | None = Field(None, min_length=1, max_length=200, examples=["NSE India"])
    timezone: str | None = Field(None, examples=["Asia/Kolkata"])
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$", examples=["IN"])
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", examples=["INR"])
    session_open: WallTime | None = Field(None, examples=["09:15:00"])
    session_close: WallTime | None = Field(None, examples=["15:30:00"])
    pre_open: WallTime | None = Field(None, examples=["09:00:00"])
    is_24h: bool | None = Field(None, examples=[False])
    holidays: list[date] | None = Field(None, examples=[["2026-01-26"]])

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else repo.check_timezone(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> ExchangePatch:
        patch_values(self, nullable={"pre_open"})
        return self


class ExchangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str = Field(examples=["NSE"])
    name: str = Field(examples=["National Stock Exchange of India"])
    timezone: str = Field(examples=["Asia/Kolkata"])
    country: str = Field(examples=["IN"])
    currency: str = Field(examples=["INR"])
    session_open: WallTimeOut = Field(examples=["09:15:00"])
    session_close: WallTimeOut = Field(examples=["15:30:00"])
    pre_open: WallTimeOut | None = Field(examples=["09:00:00"])
    is_24h: bool = Field(examples=[False])
    holidays: list[date] = Field(examples=[["2026-01-26", "2026-03-03"]])
    created_at: datetime
    updated_at: datetime


class HolidaysIn(BaseModel):
    dates: list[date] = Field(min_length=1, max_length=1000, examples=[["2026-11-09"]])


class HolidaysOut(BaseModel):
    exchange: str = Field(examples=["NSE"])
    dates: list[date] = Field(examples=[["2026-01-26", "2026-11-09"]])


class SpecialSessionIn(BaseModel):
    """A one-day session, e.g. muhurat trading; it trades even on a holiday or weekend."""

    session_date: date = Field(examples=["2026-11-08"])
    session_open: WallTime = Field(examples=["18:00:00"])
    session_close: WallTime = Field(examples=["19:15:00"])
    description: PlainText | None = Field(None, max_length=200, examples=["Muhurat trading"])

    @model_validator(mode="after")
    def _hours(self) -> SpecialSessionIn:
        repo.check_hours(self.session_open, self.session_close, False)
        return self


class SpecialSessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    exchange: str = Field(examples=["NSE"])
    session_date: date = Field(examples=["2026-11-08"])
    session_open: WallTimeOut = Field(examples=["18:00:00"])
    session_close: WallTimeOut = Field(examples=["19:15:00"])
    description: str | None = Field(examples=["Muhurat trading"])


@router.get("/api/exchanges", summary="List exchanges", response_model=list[ExchangeOut])
async def list_exchanges(session: SessionDep, _: CurrentUser) -> Any:
    return await repo.list_exchanges(session)


@router.post(
    "/api/exchanges", status_code=201, summary="Create an exchange", response_model=ExchangeOut
)
async def create_exchange(body: ExchangeIn, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return await repo.create_exchange(session, body.model_dump())


@router.get("/api/exchanges/{code}", summary="One exchange", response_model=ExchangeOut)
async def get_exchange(code: Code, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        return await repo.get_exchange(session, code)


@router.patch("/api/exchanges/{code}", summary="Update an exchange", response_model=ExchangeOut)
async def update_exchange(
    code: Code, body: ExchangePatch, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.update_exchange(session, code, patch_values(body, {"pre_open"}))


@router.delete(
    "/api/exchanges/{code}", status_code=204, summary="Delete an exchange without instruments"
)
async def delete_exchange(code: Code, session: SessionDep, _: AdminUser) -> Response:
    with http_errors():
        await repo.delete_exchange(session, code)
    return Response(status_code=204)


@router.get(
    "/api/exchanges/{code}/holidays", summary="Holiday calendar", response_model=HolidaysOut
)
async def list_holidays(
    code: Code,
    session: SessionDep,
    _: CurrentUser,
    year: Annotated[int | None, Query(ge=1900, le=2200, examples=[2026])] = None,
) -> Any:
    with http_errors():
        return HolidaysOut(exchange=code, dates=await repo.list_holidays(session, code, year))


@router.post(
    "/api/exchanges/{code}/holidays",
    summary="Add holidays (dates already there are kept once)",
    response_model=HolidaysOut,
)
async def add_holidays(code: Code, body: HolidaysIn, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return HolidaysOut(exchange=code, dates=await repo.add_holidays(session, code, body.dates))


@router.delete("/api/exchanges/{code}/holidays/{day}", status_code=204, summary="Remove a holiday")
async def remove_holiday(code: Code, day: Day, session: SessionDep, _: AdminUser) -> Response:
    with http_errors():
        await repo.remove_holiday(session, code, day)
    return Response(status_code=204)


@router.get(
    "/api/exchanges/{code}/special-sessions",
    summary="Special sessions (e.g. muhurat trading)",
    response_model=list[SpecialSessionOut],
)
async def list_special_sessions(
    code: Code,
    session: SessionDep,
    _: CurrentUser,
    year: Annotated[int | None, Query(ge=1900, le=2200, examples=[2026])] = None,
) -> Any:
    with http_errors():
        return await repo.list_special_sessions(session, code, year)


@router.post(
    "/api/exchanges/{code}/special-sessions",
    status_code=201,
    summary="Add a special session",
    response_model=SpecialSessionOut,
)
async def add_special_session(
    code: Code, body: SpecialSessionIn, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        return await repo.add_special_session(session, code, body.model_dump())


@router.delete(
    "/api/exchanges/{code}/special-sessions/{day}",
    status_code=204,
    summary="Remove a special session",
)
async def remove_special_session(
    code: Code, day: Day, session: SessionDep, _: AdminUser
) -> Response:
    with http_errors():
        await repo.remove_special_session(session, code, day)
    return Response(status_code=204)

"""Providers over REST: CRUD, write-only credentials and exchange ↔ provider priorities.

Credentials go in with ``PUT /api/providers/{name}/credentials`` (a JSON object, encrypted with
``CREDENTIALS_ENCRYPTION_KEY``) and never come out: responses say only ``has_credentials``.
Without the key configured, storing credentials is a 503 saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, model_validator

from marketpulse.accounts.secrets import SecretBox
from marketpulse.api.deps import SessionDep, SettingsDep
from marketpulse.api.security import AdminUser, CurrentUser
from marketpulse.reference import providers as repo
from marketpulse.reference.errors import http_errors
from marketpulse.reference.exchanges import CODE_PATTERN
from marketpulse.reference.fields import PlainText, patch_values
from marketpulse.reference.models import ExchangeProvider, Provider

router = APIRouter(tags=["providers"])

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,39}$"
Name = Annotated[str, Path(pattern=NAME_PATTERN, examples=["kite"])]
Code = Annotated[str, Path(pattern=CODE_PATTERN, examples=["NSE"])]


class ProviderIn(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, examples=["kite"], description="the feed's name")
    kind: PlainText = Field("broker", min_length=1, max_length=40, examples=["broker"])
    enabled: bool = Field(True, examples=[True])
    rate_limit_per_second: float | None = Field(None, gt=0, le=1e6, examples=[3.0])


class ProviderPatch(BaseModel):
    kind: PlainText | None = Field(None, min_length=1, max_length=40, examples=["vendor"])
    enabled: bool | None = Field(None, examples=[False])
    rate_limit_per_second: float | None = Field(None, gt=0, le=1e6, examples=[10.0])

    @model_validator(mode="after")
    def _no_nulls(self) -> ProviderPatch:
        patch_values(self, nullable={"rate_limit_per_second"})
        return self


class ProviderOut(BaseModel):
    name: str = Field(examples=["kite"])
    kind: str = Field(examples=["broker"])
    enabled: bool = Field(examples=[True])
    rate_limit_per_second: float | None = Field(examples=[3.0])
    has_credentials: bool = Field(examples=[True], description="credentials are never returned")
    created_at: datetime
    updated_at: datetime


class ExchangeMappingIn(BaseModel):
    priority: int = Field(0, ge=0, le=1000, examples=[0], description="lower is preferred")


class ExchangeMappingOut(BaseModel):
    exchange: str = Field(examples=["NSE"])
    provider: str = Field(examples=["kite"])
    priority: int = Field(examples=[0])


CredentialsIn = Annotated[
    dict[str, Any],
    Field(min_length=1, examples=[{"api_key": "abc123", "api_secret": "s3cr3t"}]),
]


def _out(provider: Provider) -> ProviderOut:
    return ProviderOut(
        name=provider.name,
        kind=provider.kind,
        enabled=provider.enabled,
        rate_limit_per_second=provider.rate_limit_per_second,
        has_credentials=provider.credentials is not None,
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


def _mapping(mapping: ExchangeProvider) -> ExchangeMappingOut:
    return ExchangeMappingOut(
        exchange=mapping.exchange, provider=mapping.provider, priority=mapping.priority
    )


@router.get("/api/providers", summary="List providers", response_model=list[ProviderOut])
async def list_providers(session: SessionDep, _: CurrentUser) -> Any:
    return [_out(p) for p in await repo.list_providers(session)]


@router.post(
    "/api/providers", status_code=201, summary="Create a provider", response_model=ProviderOut
)
async def create_provider(body: ProviderIn, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return _out(await repo.create_provider(session, body.model_dump()))


@router.get(
    "/api/exchange-providers",
    summary="Exchange ↔ provider mappings, by priority",
    response_model=list[ExchangeMappingOut],
)
async def list_exchange_mappings(
    session: SessionDep,
    _: CurrentUser,
    exchange: Annotated[str | None, Query(pattern=CODE_PATTERN, examples=["NSE"])] = None,
) -> Any:
    with http_errors():
        return [_mapping(m) for m in await repo.list_exchange_providers(session, exchange=exchange)]


@router.get("/api/providers/{name}", summary="One provider", response_model=ProviderOut)
async def get_provider(name: Name, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        return _out(await repo.get_provider(session, name))


@router.patch("/api/providers/{name}", summary="Update a provider", response_model=ProviderOut)
async def update_provider(
    name: Name, body: ProviderPatch, session: SessionDep, _: AdminUser
) -> Any:
    with http_errors():
        changes = patch_values(body, {"rate_limit_per_second"})
        return _out(await repo.update_provider(session, name, changes))


@router.delete("/api/providers/{name}", status_code=204, summary="Delete a provider")
async def delete_provider(name: Name, session: SessionDep, _: AdminUser) -> Response:
    with http_errors():
        await repo.delete_provider(session, name)
    return Response(status_code=204)


@router.put(
    "/api/providers/{name}/credentials",
    summary="Store the provider's credentials (encrypted; never returned)",
    response_model=ProviderOut,
)
async def set_credentials(
    name: Name, body: CredentialsIn, session: SessionDep, settings: SettingsDep, _: AdminUser
) -> Any:
    with http_errors():
        await repo.get_provider(session, name)
        box = SecretBox.from_settings(settings)
        return _out(await repo.set_credentials(session, name, body, box))


@router.delete(
    "/api/providers/{name}/credentials",
    summary="Forget the credentials",
    response_model=ProviderOut,
)
async def clear_credentials(name: Name, session: SessionDep, _: AdminUser) -> Any:
    with http_errors():
        return _out(await repo.clear_credentials(session, name))


@router.get(
    "/api/providers/{name}/exchanges",
    summary="Exchanges this provider serves",
    response_model=list[ExchangeMappingOut],
)
async def provider_exchanges(name: Name, session: SessionDep, _: CurrentUser) -> Any:
    with http_errors():
        return [_mapping(m) for m in await repo.list_exchange_providers(session, provider=name)]


@router.put(
    "/api/providers/{name}/exchanges/{code}",
    summary="Map the provider to an exchange with a priority (create or update)",
    response_model=ExchangeMappingOut,
)
async def set_exchange_mapping(
    name: Name,
    code: Code,
    body: ExchangeMappingIn,
    session: SessionDep,
    response: Response,
    _: AdminUser,
) -> Any:
    with http_errors():
        mapping, created = await repo.set_exchange_provider(session, name, code, body.priority)
    if created:
        response.status_code = 201
    return _mapping(mapping)


@router.delete(
    "/api/providers/{name}/exchanges/{code}",
    status_code=204,
    summary="Unmap the provider from an exchange",
)
async def delete_exchange_mapping(
    name: Name, code: Code, session: SessionDep, _: AdminUser
) -> Response:
    with http_errors():
        await repo.delete_exchange_provider(session, name, code)
    return Response(status_code=204)

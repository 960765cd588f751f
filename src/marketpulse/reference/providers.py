"""Providers (brokers and data vendors), their encrypted credentials and which exchanges each
serves, by priority.

Credentials are a JSON object encrypted with :class:`SecretBox` before they reach the
database; nothing here ever returns them, only whether they are set
(:func:`read_credentials` is for the feeds, not the API).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.secrets import SecretBox
from marketpulse.reference.errors import ConflictError, InvalidError, NotFoundError
from marketpulse.reference.models import Exchange, ExchangeProvider, Provider


async def list_providers(session: AsyncSession) -> list[Provider]:
    return list((await session.scalars(select(Provider).order_by(Provider.name))).all())


async def get_provider(session: AsyncSession, name: str) -> Provider:
    provider = await session.get(Provider, name)
    if provider is None:
        raise NotFoundError(f"no provider {name!r}")
    return provider


async def create_provider(session: AsyncSession, values: Mapping[str, Any]) -> Provider:
    existing = await session.get(Provider, values["name"])
    if existing is not None:
        raise ConflictError(f"provider {existing.name!r} already exists (kind {existing.kind})")
    provider = Provider(**values)
    session.add(provider)
    await session.commit()
    await session.refresh(provider)
    return provider


async def update_provider(session: AsyncSession, name: str, changes: Mapping[str, Any]) -> Provider:
    provider = await get_provider(session, name)
    for key, value in changes.items():
        setattr(provider, key, value)
    await session.commit()
    await session.refresh(provider)
    return provider


async def delete_provider(session: AsyncSession, name: str) -> None:
    """Delete a provider and its exchange mappings (instrument mappings are the instrument
    master's and stay: they are keyed by the provider's name, not by this row)."""
    provider = await get_provider(session, name)
    await session.delete(provider)
    await session.commit()


async def set_credentials(
    session: AsyncSession, name: str, credentials: Mapping[str, Any], box: SecretBox
) -> Provider:
    """Replace the provider's credentials with ``credentials`` (a JSON object), encrypted."""
    provider = await get_provider(session, name)
    provider.credentials = box.encrypt(json.dumps(dict(credentials), separators=(",", ":")))
    await session.commit()
    await session.refresh(provider)
    return provider


async def clear_credentials(session: AsyncSession, name: str) -> Provider:
    provider = await get_provider(session, name)
    if provider.credentials is None:
        raise NotFoundError(f"provider {name!r} has no credentials")
    provider.credentials = None
    await session.commit()
    await session.refresh(provider)
    return provider


async def read_credentials(
    session: AsyncSession, name: str, box: SecretBox
) -> dict[str, Any] | None:
    """The decrypted credentials, for code that presents them to the provider."""
    provider = await get_provider(session, name)
    if provider.credentials is None:
        return None
    value = json.loads(box.decrypt(provider.credentials))
    assert isinstance(value, dict)
    return value


async def list_exchange_providers(
    session: AsyncSession, *, exchange: str | None = None, provider: str | None = None
) -> list[ExchangeProvider]:
    """Mappings by exchange, then priority (lowest first), then provider."""
    query = select(ExchangeProvider)
    if exchange is not None:
        if await session.get(Exchange, exchange) is None:
            raise NotFoundError(f"no exchange {exchange!r}")
        query = query.where(ExchangeProvider.exchange == exchange)
    if provider is not None:
        await get_provider(session, provider)
        query = query.where(ExchangeProvider.provider == provider)
    query = query.order_by(
        ExchangeProvider.exchange, ExchangeProvider.priority, ExchangeProvider.provider
    )
    return list((await session.scalars(query)).all())


async def set_exchange_provider(
    session: AsyncSession, provider: str, exchange: str, priority: int
) -> tuple[ExchangeProvider, bool]:
    """Create or re-prioritise the mapping; returns it and whether it was new."""
    await get_provider(session, provider)
    if await session.get(Exchange, exchange) is None:
        raise InvalidError(f"exchange {exchange!r} does not exist")
    mapping = await session.get(ExchangeProvider, (exchange, provider))
    created = mapping is None
    if mapping is None:
        mapping = ExchangeProvider(exchange=exchange, provider=provider, priority=priority)
        session.add(mapping)
    else:
        mapping.priority = priority
    await session.commit()
    return mapping, created


async def delete_exchange_provider(session: AsyncSession, provider: str, exchange: str) -> None:
    mapping = await session.get(ExchangeProvider, (exchange, provider))
    if mapping is None:
        raise NotFoundError(f"provider {provider!r} is not mapped to exchange {exchange!r}")
    await session.delete(mapping)
    await session.commit()

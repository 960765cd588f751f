"""API keys for programs: created for a user, shown once, stored as SHA-256, revocable.

A key acts with its owner's role and stops working when the owner is deactivated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.models import ApiKey, User
from marketpulse.accounts.tokens import digest, new_api_key

# last_used_at is written at most this often per key, not on every request.
_TOUCH_EVERY = timedelta(seconds=60)


async def create_api_key(session: AsyncSession, user_id: int, name: str) -> tuple[ApiKey, str]:
    """The stored row and the key itself (which is not kept anywhere)."""
    key, prefix = new_api_key()
    row = ApiKey(user_id=user_id, name=name, prefix=prefix, key_hash=digest(key))
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row, key


async def list_api_keys(session: AsyncSession, user_id: int) -> list[ApiKey]:
    """The user's keys that are not revoked, oldest first."""
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
    )
    return list(rows)


async def revoke_api_key(
    session: AsyncSession, key_id: int, user_id: int, *, any_owner: bool = False
) -> bool:
    """Revoke a key of ``user_id`` (any user's when ``any_owner``); ``False`` if none such."""
    row = await session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or (row.user_id != user_id and not any_owner):
        return False
    row.revoked_at = datetime.now(UTC)
    await session.commit()
    return True


async def resolve_api_key(session: AsyncSession, key: str) -> User | None:
    """The active owner of a valid, unrevoked key, or ``None``."""
    found = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None))
        )
    ).first()
    if found is None:
        return None
    row, user = found
    if not user.active:
        return None
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
        await session.commit()
    return user

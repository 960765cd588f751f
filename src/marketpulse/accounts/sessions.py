"""Sign-in sessions: token pairs, refresh-token rotation with reuse detection, and revocation.

A refresh token is single-use: ``/auth/refresh`` revokes it and hands out a successor in the
same family. A revoked token presented again means it was copied, so the whole family is
revoked and the holder must log in again. Logged-out access tokens are remembered in Redis
(``{REDIS_KEY_PREFIX}:auth:revoked:{jti}``) until they would have expired anyway.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.models import RefreshToken, User
from marketpulse.accounts.tokens import (
    AccessClaims,
    digest,
    encode_access_token,
    new_refresh_token,
)
from marketpulse.config import Settings


class InvalidRefreshTokenError(Exception):
    """Unknown, expired, revoked or reused refresh token."""


def _revoked_key(settings: Settings, jti: str) -> str:
    return f"{settings.redis_key_prefix}:auth:revoked:{jti}"


async def issue_tokens(
    session: AsyncSession, user: User, settings: Settings, *, family: uuid.UUID | None = None
) -> dict[str, Any]:
    """A new access token and refresh token for ``user`` (the response body of login)."""
    now = int(time.time())
    access, _ = encode_access_token(
        user.id, user.username, user.role, settings.jwt_secret.get_secret_value(),
        now=now, ttl_seconds=settings.jwt_access_ttl_seconds,
    )  # fmt: skip
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            token_hash=digest(refresh),
            family=family or uuid.uuid4(),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.jwt_refresh_ttl_seconds),
        )
    )
    await session.commit()
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": settings.jwt_access_ttl_seconds,
        "refresh_token": refresh,
        "refresh_expires_in": settings.jwt_refresh_ttl_seconds,
        "role": user.role,
    }


async def _revoke_family(session: AsyncSession, family: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.commit()


async def rotate(session: AsyncSession, refresh_token: str, settings: Settings) -> dict[str, Any]:
    """Spend ``refresh_token`` for a new pair; :class:`InvalidRefreshTokenError` otherwise."""
    now = datetime.now(UTC)
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
        .with_for_update()
    )  # fmt: skip
    if row is None:
        raise InvalidRefreshTokenError("invalid refresh token")
    if row.revoked_at is not None:
        await _revoke_family(session, row.family, now)
        raise InvalidRefreshTokenError(
            "refresh token already used or revoked; every session from this login is now "
            "revoked, log in again"
        )
    if row.expires_at <= now:
        await session.rollback()
        raise InvalidRefreshTokenError("refresh token expired; log in again")
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        await _revoke_family(session, row.family, now)
        raise InvalidRefreshTokenError("account disabled")
    row.revoked_at = now
    return await issue_tokens(session, user, settings, family=row.family)


async def revoke_refresh_token(session: AsyncSession, refresh_token: str, user_id: int) -> bool:
    """Revoke the caller's own refresh token (and its rotation family); ``False`` if unknown."""
    row = await session.scalar(
        select(RefreshToken).where(
            RefreshToken.token_hash == digest(refresh_token), RefreshToken.user_id == user_id
        )
    )
    if row is None:
        return False
    await _revoke_family(session, row.family, datetime.now(UTC))
    return True


async def revoke_all_refresh_tokens(session: AsyncSession, user_id: int) -> None:
    """Log a user out everywhere (used when an account is deactivated)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    await session.commit()


async def revoke_access_token(redis: Any, settings: Settings, claims: AccessClaims) -> None:
    """Refuse this access token from now until its expiry."""
    ttl = claims.expires_at - int(time.time())
    if ttl > 0:
        await redis.set(_revoked_key(settings, claims.jti), b"1", ex=ttl)


async def access_token_revoked(redis: Any, settings: Settings, jti: str) -> bool:
    return bool(await redis.exists(_revoked_key(settings, jti)))

"""Users: creation, listing, deactivation, and password login with per-account lockout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.models import User
from marketpulse.accounts.oidc import Identity
from marketpulse.accounts.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{2,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)


class AccountError(Exception):
    """Base of the account errors routes and the CLI turn into messages."""


class DuplicateUsernameError(AccountError):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")


class InvalidCredentialsError(AccountError):
    """Wrong username or password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("incorrect username or password")


@dataclass
class AccountLockedError(AccountError):
    """Too many wrong passwords: refused until the lockout ends, even with the right one."""

    retry_after: float

    def __str__(self) -> str:
        return (
            "account temporarily locked after repeated failed logins; "
            f"try again in {max(1, round(self.retry_after))} s"
        )


def check_username(username: str) -> str:
    """The username, or ValueError saying what a valid one looks like."""
    if not _USERNAME.match(username):
        raise ValueError(
            "username must be 3-64 characters: letters, digits and _ . @ + - "
            "(starting with a letter or digit)"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


async def create_user(
    session: AsyncSession,
    username: str,
    password: str | None,
    *,
    role: str = "user",
    email: str | None = None,
    oidc: tuple[str, str] | None = None,
) -> User:
    """Insert and commit a user; :class:`DuplicateUsernameError` if the name (any case) exists.

    ``password=None`` makes an account that can only sign in through OIDC."""
    user = User(
        username=check_username(username),
        password_hash=hash_password(check_password(password)) if password is not None else None,
        role=role, active=True, email=email, failed_logins=0,
        oidc_issuer=oidc[0] if oidc else None, oidc_subject=oidc[1] if oidc else None,
    )  # fmt: skip
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise DuplicateUsernameError(username) from exc
    return user


async def find_user(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.username) == username.lower()))


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.id)))


async def admin_exists(session: AsyncSession) -> bool:
    found = await session.scalar(
        select(User.id).where(User.role == "admin", User.active.is_(True)).limit(1)
    )
    return found is not None


async def set_active(session: AsyncSession, username: str, active: bool) -> User | None:
    """(De)activate a user; ``None`` when there is no such user. A deactivated user cannot log
    in, refresh, or use API keys; an access token already issued lives until it expires."""
    user = await find_user(session, username)
    if user is None:
        return None
    user.active = active
    await session.commit()
    return user


async def authenticate(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    max_attempts: int,
    lockout_seconds: float,
    now: datetime | None = None,
) -> User:
    """The active user whose password this is.

    After ``max_attempts`` consecutive wrong passwords the account is locked for
    ``lockout_seconds`` (:class:`AccountLockedError`, even for the right password); a
    successful login resets the count. Unknown users cost one Argon2 verification too."""
    now = now or datetime.now(UTC)
    user = await find_user(session, username)
    if user is None or not user.active:
        verify_password(password, None)
        raise InvalidCredentialsError
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLockedError((user.locked_until - now).total_seconds())
    ok, new_hash = verify_password(password, user.password_hash)
    if not ok:
        user.failed_logins += 1
        if user.failed_logins >= max_attempts:
            user.failed_logins = 0
            user.locked_until = now + timedelta(seconds=lockout_seconds)
            await session.commit()
            raise AccountLockedError(lockout_seconds)
        await session.commit()
        raise InvalidCredentialsError
    if new_hash is not None:
        user.password_hash = new_hash
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    await session.commit()
    return user


class NoAccountError(AccountError):
    """An OIDC identity with no matching user while OIDC_AUTO_CREATE is off."""


async def user_for_identity(
    session: AsyncSession, identity: Identity, *, auto_create: bool
) -> User:
    """The user an OIDC identity signs in as.

    Matched by (issuer, subject); else, for a verified email, the user with that email or
    username, which is then linked to the identity; else a new user with role ``user`` when
    ``auto_create``. A deactivated user is refused like a wrong password."""
    user = await session.scalar(
        select(User).where(
            User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject
        )
    )
    if user is None and identity.email and identity.email_verified:
        email = identity.email.lower()
        user = await session.scalar(
            select(User)
            .where(
                User.oidc_subject.is_(None),
                (func.lower(User.email) == email) | (func.lower(User.username) == email),
            )
            .order_by(User.id)
            .limit(1)
        )
        if user is not None:
            user.oidc_issuer, user.oidc_subject = identity.issuer, identity.subject
            await session.commit()
    if user is None:
        if not auto_create:
            raise NoAccountError(
                "no marketpulse account for this identity; ask an admin to create one"
            )
        user = await _create_for_identity(session, identity)
    if not user.active:
        raise InvalidCredentialsError
    user.last_login_at = datetime.now(UTC)
    await session.commit()
    return user


async def _create_for_identity(session: AsyncSession, identity: Identity) -> User:
    email = identity.email if identity.email_verified else None
    base = email if email and _USERNAME.match(email) else None
    base = base or "oidc-" + re.sub(r"[^A-Za-z0-9_.@+-]", "-", identity.subject)[:50]
    for attempt in range(20):
        name = base if attempt == 0 else f"{base[:58]}-{attempt}"
        try:
            return await create_user(
                session, name, None, email=email, oidc=(identity.issuer, identity.subject)
            )
        except DuplicateUsernameError:
            continue
    raise DuplicateUsernameError(base)

"""``marketpulse users``: create the first admin, list and (de)activate users, make a key.

The first admin can only be made here (``POST /auth/register`` needs an admin). Commands use
``DATABASE_URL`` (or the embedded PostgreSQL, like every other command) and apply pending
migrations first, so they work on a fresh database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts import sessions, users
from marketpulse.accounts.models import User
from marketpulse.accounts.secrets import generate_key

users_app = typer.Typer(help="Accounts: users and keys.", no_args_is_help=True)

T = TypeVar("T")


def _in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in a session on the configured database (migrated first)."""
    from marketpulse import cli
    from marketpulse.store.database import upgrade_sync
    from marketpulse.store.orm import create_engine, create_sessionmaker

    def action(url: str) -> T:
        upgrade_sync(url)

        async def run() -> T:
            engine = create_engine(url, pool_size=1)
            try:
                async with create_sessionmaker(engine)() as session:
                    return await work(session)
            finally:
                await engine.dispose()

        return asyncio.run(run())

    return cli._with_database(action)  # type: ignore[return-value]


def _fail(message: str) -> typer.Exit:
    from marketpulse import cli

    return cli._fail(message)


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="3-64 characters: letters, digits, _.@+-")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="MARKETPULSE_PASSWORD",
            help="asked for when not given (or MARKETPULSE_PASSWORD)",
        ),
    ],
    admin: Annotated[bool, typer.Option("--admin", help="role admin instead of user")] = False,
    email: Annotated[str | None, typer.Option(help="e-mail (links an OIDC login)")] = None,
) -> None:
    """Create a user; ``--admin`` for the first administrator."""
    from marketpulse import cli

    async def work(session: AsyncSession) -> User:
        return await users.create_user(
            session, username, password, role="admin" if admin else "user", email=email
        )

    try:
        user = _in_session(work)
    except (users.DuplicateUsernameError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    cli.console.print(f"created {user.role} {user.username} (id {user.id})", highlight=False)


@users_app.command("list")
def list_command() -> None:
    """Every user with role, state and last login."""
    from rich.table import Table

    from marketpulse import cli

    rows = _in_session(users.list_users)
    table = Table("id", "username", "role", "active", "email", "last login")
    for u in rows:
        table.add_row(str(u.id), u.username, u.role, "yes" if u.active else "no",
                      u.email or "", str(u.last_login_at or ""))  # fmt: skip
    cli.console.print(table)


@users_app.command("deactivate")
def deactivate(
    username: str,
    activate: Annotated[bool, typer.Option("--activate", help="re-enable instead")] = False,
) -> None:
    """Stop a user from logging in, refreshing and using API keys (``--activate`` undoes it).

    Refresh tokens are revoked; access tokens already issued expire within
    JWT_ACCESS_TTL_SECONDS."""
    from marketpulse import cli

    async def work(session: AsyncSession) -> User | None:
        user = await users.set_active(session, username, activate)
        if user is not None and not activate:
            await sessions.revoke_all_refresh_tokens(session, user.id)
        return user

    user = _in_session(work)
    if user is None:
        raise _fail(f"no user {username!r}")
    cli.console.print(f"{user.username} {'activated' if activate else 'deactivated'}")


@users_app.command("generate-key")
def generate_key_command() -> None:
    """Print a new key for CREDENTIALS_ENCRYPTION_KEY (encrypts broker credentials at rest)."""
    typer.echo(generate_key())

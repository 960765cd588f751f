"""Accounts: users (with login lockout and OIDC identity), refresh tokens and API keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id              bigserial PRIMARY KEY,
            username        text NOT NULL,
            password_hash   text,
            role            text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
            active          boolean NOT NULL DEFAULT true,
            email           text,
            oidc_issuer     text,
            oidc_subject    text,
            failed_logins   integer NOT NULL DEFAULT 0,
            locked_until    timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now(),
            last_login_at   timestamptz,
            CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL))
        )
        """
    )
    # Usernames are unique regardless of case: "Alice" and "alice" are one account.
    op.execute("CREATE UNIQUE INDEX users_username_key ON users (lower(username))")
    op.execute(
        "CREATE UNIQUE INDEX users_oidc_key ON users (oidc_issuer, oidc_subject) "
        "WHERE oidc_subject IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE refresh_tokens (
            id          bigserial PRIMARY KEY,
            user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            token_hash  text NOT NULL UNIQUE,
            family      uuid NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL,
            revoked_at  timestamptz
        )
        """
    )
    op.execute("CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family)")
    op.execute("CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id)")
    op.execute(
        """
        CREATE TABLE api_keys (
            id            bigserial PRIMARY KEY,
            user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name          text NOT NULL,
            prefix        text NOT NULL,
            key_hash      text NOT NULL UNIQUE,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_used_at  timestamptz,
            revoked_at    timestamptz
        )
        """
    )
    op.execute("CREATE INDEX api_keys_user_idx ON api_keys (user_id)")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE refresh_tokens")
    op.execute("DROP TABLE users")

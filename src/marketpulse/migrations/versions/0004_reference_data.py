"""Reference data: exchange special sessions, sectors, providers, instrument search, sync jobs.

Instrument search is prefix (btree ``text_pattern_ops`` indexes on ``upper(symbol)`` and
``lower(name)``) plus fuzzy (pg_trgm GIN indexes on ``symbol`` and ``name``). pg_trgm ships with
PostgreSQL's contrib package and is a trusted extension, but a server built without contrib, or
a role that may not create it, must still migrate: the extension and its indexes are created
only when possible, and the search falls back to prefix/substring matching without them.
The downgrade drops the indexes but leaves the extension (other schemas may use it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE exchange_special_sessions (
            id            bigserial PRIMARY KEY,
            exchange      text NOT NULL REFERENCES exchanges(code) ON DELETE CASCADE,
            session_date  date NOT NULL,
            session_open  time NOT NULL,
            session_close time NOT NULL,
            description   text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (exchange, session_date),
            CHECK (session_open < session_close)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE sectors (
            id          bigserial PRIMARY KEY,
            name        text NOT NULL UNIQUE,
            description text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "ALTER TABLE instruments ADD COLUMN sector_id bigint NULL "
        "REFERENCES sectors(id) ON DELETE SET NULL"
    )
    op.execute("CREATE INDEX instruments_sector_idx ON instruments (sector_id)")
    op.execute("CREATE INDEX instruments_type_idx ON instruments (instrument_type)")
    op.execute("CREATE INDEX instruments_expiry_idx ON instruments (expiry)")
    op.execute(
        "CREATE INDEX instruments_symbol_prefix_idx ON instruments (upper(symbol) text_pattern_ops)"
    )
    op.execute(
        "CREATE INDEX instruments_name_prefix_idx ON instruments (lower(name) text_pattern_ops)"
    )
    op.execute("CREATE INDEX instrument_providers_token_idx ON instrument_providers (token)")
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
                BEGIN
                    CREATE EXTENSION IF NOT EXISTS pg_trgm;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'pg_trgm not created (%): fuzzy search disabled', SQLERRM;
                END;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                CREATE INDEX instruments_symbol_trgm_idx ON instruments
                    USING gin (symbol gin_trgm_ops);
                CREATE INDEX instruments_name_trgm_idx ON instruments
                    USING gin (name gin_trgm_ops);
            END IF;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE providers (
            name                  text PRIMARY KEY,
            kind                  text NOT NULL DEFAULT 'broker',
            enabled               boolean NOT NULL DEFAULT true,
            rate_limit_per_second real CHECK (rate_limit_per_second > 0),
            credentials           text,
            created_at            timestamptz NOT NULL DEFAULT now(),
            updated_at            timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE exchange_providers (
            exchange text NOT NULL REFERENCES exchanges(code) ON DELETE CASCADE,
            provider text NOT NULL REFERENCES providers(name) ON DELETE CASCADE,
            priority integer NOT NULL DEFAULT 0,
            PRIMARY KEY (exchange, provider)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE instrument_sync_jobs (
            id          uuid PRIMARY KEY,
            provider    text NOT NULL,
            state       text NOT NULL CHECK (state IN ('pending', 'downloading', 'writing',
                                                       'succeeded', 'failed')),
            rows_done   integer NOT NULL DEFAULT 0,
            rows_total  integer,
            added       integer,
            changed     integer,
            unchanged   integer,
            removed     integer,
            collisions  text[] NOT NULL DEFAULT '{}',
            error       text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE instrument_sync_jobs")
    op.execute("DROP TABLE exchange_providers")
    op.execute("DROP TABLE providers")
    op.execute("DROP INDEX IF EXISTS instruments_name_trgm_idx")
    op.execute("DROP INDEX IF EXISTS instruments_symbol_trgm_idx")
    op.execute("DROP INDEX instrument_providers_token_idx")
    op.execute("DROP INDEX instruments_name_prefix_idx")
    op.execute("DROP INDEX instruments_symbol_prefix_idx")
    op.execute("DROP INDEX instruments_expiry_idx")
    op.execute("DROP INDEX instruments_type_idx")
    op.execute("DROP INDEX instruments_sector_idx")
    op.execute("ALTER TABLE instruments DROP COLUMN sector_id")
    op.execute("DROP TABLE sectors")
    op.execute("DROP TABLE exchange_special_sessions")

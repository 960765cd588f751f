"""Persisted subscriptions: what the feeds stream, restored whenever an ingest process starts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

One row per (symbol, feed); ``feed`` NULL means every feed that can stream the symbol, and
``NULLS NOT DISTINCT`` keeps a single such row per symbol. ``source`` says who asked for it:
the REST API, the ``SUBSCRIBE`` setting or the ``SYMBOLS_FILE``.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE subscriptions (
            id          bigserial PRIMARY KEY,
            symbol      text NOT NULL,
            mode        text NOT NULL CHECK (mode IN ('ltp', 'quote', 'full')),
            feed        text,
            source      text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'settings', 'file')),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT subscriptions_symbol_feed_key UNIQUE NULLS NOT DISTINCT (symbol, feed)
        )
        """
    )
    op.execute("CREATE INDEX subscriptions_feed_idx ON subscriptions (feed, symbol)")


def downgrade() -> None:
    op.execute("DROP TABLE subscriptions")

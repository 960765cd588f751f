"""A durable queue of the 1m candles whose coarser candles need rolling up.

Revision ID: 0008
Revises: 0007

The store merges each batch into 1m candles only and records the touched (symbol, minute)
here in the same transaction; a periodic roll-up drains the queue and recomputes the 5m, 15m,
1h and 1d candles from their children. Keeping the queue in PostgreSQL (not in a worker's
memory) means a crashed worker's pending roll-ups are done by whichever worker runs next.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE candle_rollup_queue (
            symbol   text NOT NULL,
            minute   timestamptz NOT NULL,
            exchange text NOT NULL,
            PRIMARY KEY (symbol, minute)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE candle_rollup_queue")

"""TimescaleDB hypertables, compression and retention when the extension is available.

With ``TIMESCALEDB=auto`` (default) and a server that offers TimescaleDB 2.11+, ``ticks`` and
``candles`` become hypertables with compression after a day and a tick retention policy of
``TICK_RETENTION_DAYS``; ``TIMESCALEDB=on`` fails when it cannot; ``off`` or plain PostgreSQL
leave the schema untouched. The SQL comes from :mod:`marketpulse.store.timescale`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketpulse.config import Settings
from marketpulse.store.timescale import (
    AVAILABILITY_SQL,
    EXTENSION_INSTALLED_SQL,
    HYPERTABLES_SQL,
    Statement,
    availability_from_row,
    downgrade_statements,
    should_use,
    upgrade_statements,
)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _run(statements: list[Statement]) -> None:
    for statement in statements:
        op.execute(statement.sql)


def upgrade() -> None:
    settings = Settings()
    row = op.get_bind().execute(sa.text(AVAILABILITY_SQL)).first()
    availability = availability_from_row(None if row is None else (row[0], row[1]))
    if should_use(settings.timescaledb, availability):
        _run(upgrade_statements(settings.tick_retention_days))


def downgrade() -> None:
    # Only undo what upgrade did: ticks is a hypertable only if upgrade converted it.
    bind = op.get_bind()
    if not bind.execute(sa.text(EXTENSION_INSTALLED_SQL)).scalar():
        return
    if "ticks" in {row[0] for row in bind.execute(sa.text(HYPERTABLES_SQL))}:
        _run(downgrade_statements())

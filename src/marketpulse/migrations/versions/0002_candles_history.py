"""Candles, daily price history, backfill jobs and feed gaps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The start of the bucket of `step` holding `ts`, aligned to the exchange session: buckets
    # count from the session open in the exchange's own time zone (09:15 IST for NSE), and a
    # day bucket starts at the session open of its local date.
    op.execute(
        """
        CREATE FUNCTION mp_bucket_start(ts timestamptz, step interval, tz text, open_at time)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN step >= interval '1 day'
                THEN ((ts AT TIME ZONE tz)::date + open_at) AT TIME ZONE tz
                ELSE (((ts AT TIME ZONE tz)::date + open_at) AT TIME ZONE tz)
                     + step * floor(extract(epoch FROM
                           ts - (((ts AT TIME ZONE tz)::date + open_at) AT TIME ZONE tz))
                       / extract(epoch FROM step))
            END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE candles (
            symbol        text NOT NULL,
            interval      text NOT NULL CHECK (interval IN ('1m', '5m', '15m', '1h', '1d')),
            start         timestamptz NOT NULL,
            trading_day   date NOT NULL,
            exchange      text NOT NULL,
            open          double precision NOT NULL,
            high          double precision NOT NULL,
            low           double precision NOT NULL,
            close         double precision NOT NULL,
            volume        bigint NOT NULL DEFAULT 0,
            oi            bigint,
            ticks         integer NOT NULL DEFAULT 0,
            status        text NOT NULL DEFAULT 'live'
                          CHECK (status IN ('live', 'closed', 'reconciled')),
            first_at      timestamptz,
            last_at       timestamptz,
            cum_low       bigint,
            cum_high      bigint,
            session_first boolean NOT NULL DEFAULT false,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (symbol, interval, start)
        )
        """
    )
    op.execute("CREATE INDEX candles_live_idx ON candles (start) WHERE status = 'live'")
    op.execute(
        """
        CREATE TABLE price_history_daily (
            symbol              text NOT NULL,
            date                date NOT NULL,
            open                double precision NOT NULL,
            high                double precision NOT NULL,
            low                 double precision NOT NULL,
            close               double precision NOT NULL,
            adj_close           double precision,
            volume              bigint NOT NULL DEFAULT 0,
            previous_close      double precision,
            delivery_percentage double precision,
            source              text NOT NULL,
            updated_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (symbol, date)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE backfill_jobs (
            id          uuid PRIMARY KEY,
            provider    text NOT NULL,
            symbols     text[] NOT NULL,
            interval    text NOT NULL,
            range_start timestamptz NOT NULL,
            range_end   timestamptz NOT NULL,
            status      text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'done', 'failed')),
            progress    double precision NOT NULL DEFAULT 0,
            requests    integer NOT NULL DEFAULT 0,
            candles     bigint NOT NULL DEFAULT 0,
            errors      text[] NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL DEFAULT now(),
            started_at  timestamptz,
            finished_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE feed_gaps (
            id           bigserial PRIMARY KEY,
            feed         text NOT NULL,
            symbol       text NOT NULL,
            gap_start    timestamptz NOT NULL,
            gap_end      timestamptz NOT NULL,
            reason       text NOT NULL,
            status       text NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'repaired', 'unrepairable')),
            volume_jump  bigint,
            candles      integer NOT NULL DEFAULT 0,
            detail       text,
            detected_at  timestamptz NOT NULL DEFAULT now(),
            repaired_at  timestamptz,
            UNIQUE (feed, symbol, gap_start)
        )
        """
    )
    op.execute("CREATE INDEX feed_gaps_open_idx ON feed_gaps (detected_at) WHERE status = 'open'")


def downgrade() -> None:
    op.execute("DROP TABLE feed_gaps")
    op.execute("DROP TABLE backfill_jobs")
    op.execute("DROP TABLE price_history_daily")
    op.execute("DROP TABLE candles")
    op.execute("DROP FUNCTION mp_bucket_start(timestamptz, interval, text, time)")

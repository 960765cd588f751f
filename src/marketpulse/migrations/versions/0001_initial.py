"""Initial schema: exchanges (seeded), instruments and provider mappings, day-partitioned ticks.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from datetime import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# code, name, timezone, country, currency, open, close, pre-open, 24h
# fmt: off
EXCHANGES = [
    ("NSE", "National Stock Exchange of India", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", "09:00", False),  # noqa: E501
    ("BSE", "BSE Limited", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", "09:00", False),
    ("NFO", "NSE Futures & Options", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", None, False),
    ("BFO", "BSE Futures & Options", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", None, False),
    ("CDS", "NSE Currency Derivatives", "Asia/Kolkata", "IN", "INR", "09:00", "17:00", None, False),
    ("BCD", "BSE Currency Derivatives", "Asia/Kolkata", "IN", "INR", "09:00", "17:00", None, False),
    ("MCX", "Multi Commodity Exchange", "Asia/Kolkata", "IN", "INR", "09:00", "23:30", None, False),
    ("NCO", "NSE Commodity", "Asia/Kolkata", "IN", "INR", "09:00", "23:30", None, False),
    ("NSE_INDEX", "NSE Indices", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", None, False),
    ("BSE_INDEX", "BSE Indices", "Asia/Kolkata", "IN", "INR", "09:15", "15:30", None, False),
    ("NASDAQ", "Nasdaq Stock Market", "America/New_York", "US", "USD", "09:30", "16:00", "04:00", False),  # noqa: E501
    ("NYSE", "New York Stock Exchange", "America/New_York", "US", "USD", "09:30", "16:00", "04:00", False),  # noqa: E501
]
# fmt: on


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE exchanges (
            code          text PRIMARY KEY,
            name          text NOT NULL,
            timezone      text NOT NULL,
            country       text NOT NULL,
            currency      text NOT NULL,
            session_open  time NOT NULL,
            session_close time NOT NULL,
            pre_open      time,
            is_24h        boolean NOT NULL DEFAULT false,
            holidays      date[] NOT NULL DEFAULT '{}',
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            CHECK (is_24h OR session_open < session_close)
        )
        """
    )
    exchanges = sa.table(
        "exchanges",
        *(sa.column(c) for c in ("code", "name", "timezone", "country", "currency")),
        sa.column("session_open", sa.Time), sa.column("session_close", sa.Time),
        sa.column("pre_open", sa.Time), sa.column("is_24h", sa.Boolean),
    )  # fmt: skip
    op.bulk_insert(
        exchanges,
        [
            {
                "code": code,
                "name": name,
                "timezone": tz,
                "country": country,
                "currency": currency,
                "session_open": time.fromisoformat(open_),
                "session_close": time.fromisoformat(close),
                "pre_open": time.fromisoformat(pre_open) if pre_open else None,
                "is_24h": is_24h,
            }
            for code, name, tz, country, currency, open_, close, pre_open, is_24h in EXCHANGES
        ],
    )
    op.execute(
        """
        CREATE TABLE instruments (
            id              bigserial PRIMARY KEY,
            symbol          text NOT NULL UNIQUE,
            exchange        text NOT NULL REFERENCES exchanges(code),
            name            text,
            instrument_type text NOT NULL DEFAULT 'EQ',
            lot_size        integer NOT NULL DEFAULT 1,
            tick_size       numeric(12, 6) NOT NULL DEFAULT 0.05,
            expiry          date,
            strike          numeric(16, 4),
            isin            text,
            active          boolean NOT NULL DEFAULT true,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX instruments_exchange_idx ON instruments (exchange)")
    op.execute(
        """
        CREATE TABLE instrument_providers (
            id            bigserial PRIMARY KEY,
            instrument_id bigint NOT NULL REFERENCES instruments(id) ON DELETE CASCADE,
            provider      text NOT NULL,
            exchange      text NOT NULL,
            token         text NOT NULL,
            broker_symbol text,
            UNIQUE (provider, exchange, token),
            UNIQUE (instrument_id, provider)
        )
        """
    )
    # Partitioned by UTC day on `time` (exchange time, else receive time). The stream entry id
    # makes a redelivered firehose entry a no-op (ON CONFLICT DO NOTHING).
    op.execute(
        """
        CREATE TABLE ticks (
            time           timestamptz NOT NULL,
            symbol         text NOT NULL,
            source         text NOT NULL,
            token          text NOT NULL,
            exchange       text NOT NULL,
            mode           text NOT NULL,
            ltp            double precision NOT NULL,
            ltq            bigint,
            atp            double precision,
            volume         bigint,
            oi             bigint,
            open           double precision,
            high           double precision,
            low            double precision,
            close          double precision,
            bid            double precision,
            bid_qty        bigint,
            ask            double precision,
            ask_qty        bigint,
            total_buy_qty  bigint,
            total_sell_qty bigint,
            ts_exchange    timestamptz,
            ts_recv        bigint,
            stream         text NOT NULL,
            stream_id      text NOT NULL,
            UNIQUE (stream, stream_id, time)
        ) PARTITION BY RANGE (time)
        """
    )
    op.execute("CREATE INDEX ticks_symbol_time_idx ON ticks (symbol, time)")


def downgrade() -> None:
    op.execute("DROP TABLE ticks")
    op.execute("DROP TABLE instrument_providers")
    op.execute("DROP TABLE instruments")
    op.execute("DROP TABLE exchanges")

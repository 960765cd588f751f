"""Candles from ticks, in the same transaction that stores the ticks.

The store worker moves a batch from its staging table into ``ticks`` with ``ON CONFLICT DO
NOTHING … RETURNING``, so only ticks stored for the first time reach the candle upsert: a
redelivered firehose entry can never count twice. Every tick lands in one bucket per interval,
aligned to its exchange's session by ``mp_bucket_start`` (09:15 IST for NSE/BSE; see migration
0002), and the per-batch partial candles merge into the stored ones:

* open/close come from the earliest/latest tick time, so a late tick corrects its candle;
* high/low are the extremes; OI is the latest; ``ticks`` counts ticks;
* volume is derived from the cumulative day volume the feed reports, never from ``ltq``: the
  candle keeps the range of cumulative volume it saw (``cum_low``/``cum_high``) and its volume
  is ``cum_high`` minus the previous candle's ``cum_high`` of the same trading day (0 for the
  session's first bucket, its own ``cum_low`` when nothing earlier was seen that day, as after a
  mid-day start). A late tick changes a candle's ``cum_high``, so its successor is recomputed.

Merging in SQL (rather than in a worker's memory) keeps candles right with several store
workers consuming the same instrument, and across worker crashes.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from marketpulse.feeds.history import CANDLE_INTERVALS
from marketpulse.model import Candle
from marketpulse.store.database import Connection

STEPS_SQL: Final = "(VALUES " + ", ".join(
    f"('{name}', interval '{int(step.total_seconds())} seconds')"
    for name, step in CANDLE_INTERVALS.items()
) + ") AS steps(name, step)"  # fmt: skip
"""Every stored interval and its length, as a SQL row source."""

_CANDLE_COLUMNS: Final = (
    "symbol, interval, start, open, high, low, close, volume, oi, ticks, status"
)

MOVE_WITH_CANDLES: Final = f"""
WITH moved AS (
    INSERT INTO ticks ({{columns}}) SELECT {{columns}} FROM {{staging}}
    ON CONFLICT DO NOTHING
    RETURNING time, ts_recv, symbol, exchange, ltp, volume, oi
),
minutes AS (
    -- Sessions open on a whole minute, so the 1m bucket is the clock minute: no time-zone
    -- work per tick. Coarser buckets are built from these per-minute partials.
    SELECT symbol, min(exchange) AS exchange, date_trunc('minute', time) AS start,
           (array_agg(ltp ORDER BY time, ts_recv))[1] AS open,
           max(ltp) AS high, min(ltp) AS low,
           (array_agg(ltp ORDER BY time DESC, ts_recv DESC))[1] AS close,
           (array_agg(oi ORDER BY time DESC, ts_recv DESC) FILTER (WHERE oi IS NOT NULL))[1]
               AS oi,
           count(*) AS ticks, min(time) AS first_at, max(time) AS last_at,
           min(volume) FILTER (WHERE volume > 0) AS cum_low,
           max(volume) FILTER (WHERE volume > 0) AS cum_high
    FROM moved WHERE ltp > 0
    GROUP BY symbol, date_trunc('minute', time)
),
sessions AS (
    SELECT m.*, coalesce(e.timezone, 'UTC') AS tz,
           coalesce(e.session_open, time '00:00') AS open_at
    FROM minutes m LEFT JOIN exchanges e ON e.code = m.exchange
),
bucketed AS (
    SELECT s.*, steps.name AS interval,
           CASE WHEN steps.name = '1m' THEN s.start
                ELSE mp_bucket_start(s.start, steps.step, s.tz, s.open_at) END AS bucket,
           (s.start AT TIME ZONE s.tz)::date AS trading_day
    FROM sessions s CROSS JOIN {STEPS_SQL}
),
partial AS (
    SELECT symbol, interval, bucket AS start,
           min(trading_day) AS trading_day, min(exchange) AS exchange,
           (array_agg(open ORDER BY first_at))[1] AS open,
           max(high) AS high, min(low) AS low,
           (array_agg(close ORDER BY last_at DESC))[1] AS close,
           (array_agg(oi ORDER BY last_at DESC) FILTER (WHERE oi IS NOT NULL))[1] AS oi,
           sum(ticks) AS ticks, min(first_at) AS first_at, max(last_at) AS last_at,
           min(cum_low) AS cum_low, max(cum_high) AS cum_high,
           bool_or(bucket <= (trading_day + open_at) AT TIME ZONE tz) AS session_first
    FROM bucketed GROUP BY symbol, interval, bucket
),
merged AS (
    INSERT INTO candles AS c (symbol, interval, start, trading_day, exchange, open, high, low,
                              close, oi, ticks, first_at, last_at, cum_low, cum_high,
                              session_first)
    SELECT symbol, interval, start, trading_day, exchange, open, high, low, close, oi, ticks,
           first_at, last_at, cum_low, cum_high, session_first
    FROM partial
    ON CONFLICT (symbol, interval, start) DO UPDATE SET
        open = CASE WHEN EXCLUDED.first_at < c.first_at THEN EXCLUDED.open ELSE c.open END,
        high = greatest(c.high, EXCLUDED.high),
        low = least(c.low, EXCLUDED.low),
        close = CASE WHEN EXCLUDED.last_at >= c.last_at THEN EXCLUDED.close ELSE c.close END,
        oi = CASE WHEN EXCLUDED.last_at >= c.last_at THEN coalesce(EXCLUDED.oi, c.oi)
                  ELSE coalesce(c.oi, EXCLUDED.oi) END,
        ticks = c.ticks + EXCLUDED.ticks,
        first_at = least(c.first_at, EXCLUDED.first_at),
        last_at = greatest(c.last_at, EXCLUDED.last_at),
        cum_low = least(c.cum_low, EXCLUDED.cum_low),
        cum_high = greatest(c.cum_high, EXCLUDED.cum_high),
        updated_at = now()
    WHERE c.status <> 'reconciled'
    RETURNING symbol, interval, start
)
SELECT (SELECT count(*) FROM moved) AS stored,
       (SELECT array_agg(symbol) FROM merged) AS symbols,
       (SELECT array_agg(interval) FROM merged) AS intervals,
       (SELECT array_agg(start) FROM merged) AS starts
"""
"""Move staged ticks into ``ticks`` and merge the new ones into candles (format with the
column list and the staging table)."""

UPDATE_VOLUMES: Final = f"""
WITH touched AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(symbol, interval, start)
),
targets AS (
    SELECT symbol, interval, start FROM touched
    UNION
    SELECT t.symbol, t.interval, n.start FROM touched t CROSS JOIN LATERAL (
        SELECT s.start FROM candles s
        WHERE s.symbol = t.symbol AND s.interval = t.interval AND s.start > t.start
        ORDER BY s.start LIMIT 1
    ) n
)
UPDATE candles c SET volume = CASE WHEN c.cum_high IS NULL THEN 0 ELSE greatest(0,
        c.cum_high - coalesce(
            (SELECT coalesce(p.cum_high, c.cum_low) FROM candles p
             WHERE p.symbol = c.symbol AND p.interval = c.interval
               AND p.trading_day = c.trading_day AND p.start < c.start
             ORDER BY p.start DESC LIMIT 1),
            CASE WHEN c.session_first THEN 0 ELSE c.cum_low END)) END
FROM targets
WHERE c.symbol = targets.symbol AND c.interval = targets.interval AND c.start = targets.start
  AND c.status <> 'reconciled'
RETURNING {", ".join("c." + col.strip() for col in _CANDLE_COLUMNS.split(","))}
"""

CLOSE_DUE: Final = f"""
WITH ending AS (
    SELECT c.symbol, c.interval, c.start,
           CASE WHEN c.interval = '1d' AND e.code IS NOT NULL
                THEN least(c.start + steps.step,
                           (c.trading_day + e.session_close) AT TIME ZONE e.timezone)
                ELSE c.start + steps.step END AS ends
    FROM candles c JOIN {STEPS_SQL} ON steps.name = c.interval
    LEFT JOIN exchanges e ON e.code = c.exchange
    WHERE c.status = 'live'
),
due AS (
    UPDATE candles c SET status = 'closed', updated_at = now()
    FROM ending
    WHERE c.symbol = ending.symbol AND c.interval = ending.interval AND c.start = ending.start
      AND ending.ends <= now() - $1::double precision * interval '1 second'
    RETURNING c.symbol, c.interval, c.trading_day, c.open, c.high, c.low, c.close, c.volume
)
INSERT INTO price_history_daily AS d (symbol, date, open, high, low, close, volume,
                                      previous_close, source)
SELECT due.symbol, due.trading_day, due.open, due.high, due.low, due.close, due.volume,
       coalesce(
           (SELECT p.close FROM candles p
            WHERE p.symbol = due.symbol AND p.interval = '1d'
              AND p.trading_day < due.trading_day
            ORDER BY p.trading_day DESC LIMIT 1),
           (SELECT p.close FROM price_history_daily p
            WHERE p.symbol = due.symbol AND p.date < due.trading_day
            ORDER BY p.date DESC LIMIT 1)),
       'ticks'
FROM due WHERE due.interval = '1d'
ON CONFLICT (symbol, date) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, previous_close = coalesce(EXCLUDED.previous_close, d.previous_close),
    updated_at = now()
WHERE d.source = 'ticks'
"""
"""Close every live candle whose bucket has ended (a day candle at its session's close) and
record closed day candles in ``price_history_daily``; ``$1`` is the grace in seconds."""


def candle_from_record(record: asyncpg.Record) -> Candle:
    return Candle(
        record["symbol"], record["interval"], record["start"], record["open"], record["high"],
        record["low"], record["close"], record["volume"], record["oi"], record["ticks"],
        record["status"],
    )  # fmt: skip


async def update_volumes(conn: Connection, touched: asyncpg.Record) -> list[Candle]:
    """Recompute volumes of the candles a merge touched (and their successors); returns the
    touched candles as stored, for live publishing."""
    if not touched["symbols"]:
        return []
    rows = await conn.fetch(
        UPDATE_VOLUMES, touched["symbols"], touched["intervals"], touched["starts"]
    )
    return [candle_from_record(r) for r in rows]


async def close_due_candles(conn: Connection, grace_seconds: float) -> None:
    """Mark ended buckets closed and file finished days into the daily price history."""
    await conn.execute(CLOSE_DUE, grace_seconds)

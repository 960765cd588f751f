"""Candles from ticks: 1m in the same transaction that stores the ticks, coarser ones rolled up.

Only ticks stored for the first time reach the candles, so a redelivered firehose entry can
never count twice (see :mod:`marketpulse.store.ticks`). Each batch is first folded into 1m
partial candles in Python (:func:`minute_partials`, a pure function over the new ticks), the
partials are COPYed into a per-session temporary table, and one set-based statement
(:data:`MERGE_CANDLES`) merges them into the 1m ``candles`` and records their minutes in a
durable queue (``candle_rollup_queue``). Every bucket is aligned to its exchange's session by
``mp_bucket_start`` (09:15 IST for NSE/BSE; see migration 0002), computed once per exchange and
minute, not once per tick:

* open/close come from the earliest/latest tick time, so a late tick corrects its candle;
* high/low are the extremes; OI is the latest; ``ticks`` counts ticks;
* volume is derived from the cumulative day volume the feed reports, never from ``ltq``: the
  candle keeps the range of cumulative volume it saw (``cum_low``/``cum_high``) and its volume
  is ``cum_high`` minus the previous candle's ``cum_high`` of the same trading day (0 for the
  session's first bucket, its own ``cum_low`` when nothing earlier was seen that day, as after a
  mid-day start).

The 5m, 15m, 1h and 1d candles are not touched per batch: :func:`rollup_candles` drains the
queue every ``CANDLE_ROLLUP_SECONDS`` (and before ended candles are closed) and recomputes each
affected coarser candle from its children, finest first (5m from 1m, 15m from 5m, …), by the
same rules. A batch therefore updates about one candle row per instrument instead of five —
the candle rows were what bounded store throughput — and the coarser candles lag the 1m ones by
at most one roll-up period.

Existing 1m candles are changed with a plain ``UPDATE … FROM`` (an ``ON CONFLICT DO UPDATE``
would lock every row before updating it); new ones are inserted, and a candle another store
worker inserted in the meantime is merged by the same rules through ``ON CONFLICT``. The merge
computes the volume itself for the usual, in-order case (one partial per series and batch,
nothing stored after it). Only series where that is not enough — a batch spanning several
buckets of one series, or a late tick whose candle already has a successor — get a second,
targeted pass (:data:`UPDATE_VOLUMES`) that recomputes the touched candles and their successors
from the merged state; the roll-up uses the same pass.

Merging in SQL and queueing in PostgreSQL (rather than in a worker's memory) keeps candles
right with several store workers consuming the same instrument, and across worker crashes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

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

MINUTES_TABLE: Final = "candle_minutes"
"""Per-session temporary table the 1m partials of a batch are COPYed into."""

ROLLUP_QUEUE: Final = "candle_rollup_queue"
"""The (symbol, minute) of every 1m candle changed since its coarser candles were rolled up
(migration 0008); written in the merge's transaction, drained by :func:`rollup_candles`."""

MINUTE_COLUMNS: Final[tuple[str, ...]] = (
    "symbol", "exchange", "start", "open", "high", "low", "close", "oi", "ticks", "first_at",
    "last_at", "cum_low", "cum_high",
)  # fmt: skip
"""The columns of a 1m partial, in the order :func:`minute_partials` yields them."""

CREATE_MINUTES: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {MINUTES_TABLE} (symbol text NOT NULL, "
    "exchange text NOT NULL, start timestamptz NOT NULL, open double precision NOT NULL, "
    "high double precision NOT NULL, low double precision NOT NULL, "
    "close double precision NOT NULL, oi bigint, ticks integer NOT NULL, "
    "first_at timestamptz NOT NULL, last_at timestamptz NOT NULL, cum_low bigint, "
    "cum_high bigint) ON COMMIT DELETE ROWS"
)

TickFields = tuple[datetime, str, str, float, int | None, int | None, int | None]
"""What a candle needs of a tick row: time, symbol, exchange, ltp, cumulative volume, OI,
receive time (ns, the tie-break between ticks of the same exchange time)."""

MinutePartial = tuple[
    str, str, datetime, float, float, float, float, int | None, int, datetime, datetime,
    int | None, int | None,
]  # fmt: skip
"""One row of :data:`MINUTE_COLUMNS`."""


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_NO_RECV: Final = 1 << 63  # sorts after every receive time (ns since the epoch)


def _clock(time: datetime) -> tuple[datetime, int]:
    """A tick time's minute, and its microseconds since the epoch shifted into the high bits
    of an ordering key (the receive time fills the low 64 bits)."""
    return time.replace(second=0, microsecond=0), ((time - _EPOCH) // _MICROSECOND) << 64


def minute_partials(ticks: Iterable[TickFields]) -> list[MinutePartial]:
    """Fold ticks into one partial candle per symbol and clock minute.

    Sessions open on a whole minute, so the 1m bucket is the clock minute: no time-zone work per
    tick. Ticks are ordered by (time, receive time) with a missing receive time last, exactly as
    the SQL this replaces ordered them; ticks without a positive price carry no candle data.
    This runs for every stored tick, so it keeps to integer keys and a cache of the (few)
    distinct tick times of a batch.
    """
    acc: dict[tuple[str, datetime], list[Any]] = {}
    clocks: dict[datetime, tuple[datetime, int]] = {}
    for time, symbol, exchange, ltp, volume, oi, ts_recv in ticks:
        if ltp <= 0:
            continue
        clock = clocks.get(time)
        if clock is None:
            clock = clocks[time] = _clock(time)
        minute, at = clock
        order = at | (_NO_RECV if ts_recv is None else ts_recv)
        cum = volume if volume is not None and volume > 0 else None
        key = (symbol, minute)
        p = acc.get(key)
        if p is None:
            # 0 exchange, 1 first order, 2 open, 3 first time, 4 high, 5 low, 6 last order,
            # 7 close, 8 last time, 9 oi order, 10 oi, 11 ticks, 12 cum_low, 13 cum_high
            acc[key] = [exchange, order, ltp, time, ltp, ltp, order, ltp, time,
                        -1 if oi is None else order, oi, 1, cum, cum]  # fmt: skip
            continue
        if exchange < p[0]:
            p[0] = exchange
        if order < p[1]:
            p[1], p[2], p[3] = order, ltp, time
        if ltp > p[4]:
            p[4] = ltp
        elif ltp < p[5]:
            p[5] = ltp
        if order >= p[6]:
            p[6], p[7], p[8] = order, ltp, time
        if oi is not None and order >= p[9]:
            p[9], p[10] = order, oi
        p[11] += 1
        if cum is not None:
            if p[12] is None:
                p[12] = p[13] = cum
            elif cum < p[12]:
                p[12] = cum
            elif cum > p[13]:
                p[13] = cum
    return [
        (symbol, p[0], minute, p[2], p[4], p[5], p[7], p[10], p[11], p[3], p[8], p[12], p[13])
        for (symbol, minute), p in acc.items()
    ]


def _volume(cum_high: str, cum_low: str, row: str) -> str:
    """SQL for a candle's volume from its final cumulative range and the stored candle before
    it (``row`` names the candle's key/trading day/session columns)."""
    return f"""CASE WHEN {cum_high} IS NULL THEN 0 ELSE greatest(0, {cum_high} - coalesce(
            (SELECT CASE WHEN p.trading_day = {row}.trading_day
                         THEN coalesce(p.cum_high, {cum_low}) END
             FROM candles p
             WHERE p.symbol = {row}.symbol AND p.interval = {row}.interval
               AND p.start < {row}.start
             ORDER BY p.start DESC LIMIT 1),
            CASE WHEN {row}.session_first THEN 0 ELSE {cum_low} END)) END"""


_NEW_VOLUME: Final = _volume("p0.cum_high", "p0.cum_low", "p0")
_UPDATED_VOLUME: Final = _volume(
    "greatest(c.cum_high, p.cum_high)", "least(c.cum_low, p.cum_low)", "c"
)
_RETURNED: Final = f"""{", ".join("c." + col.strip() for col in _CANDLE_COLUMNS.split(","))},
    EXISTS (SELECT 1 FROM candles s WHERE s.symbol = c.symbol AND s.interval = c.interval
            AND s.start > c.start) AS has_next"""
_MERGED_VOLUME: Final = _volume(
    "greatest(c.cum_high, EXCLUDED.cum_high)", "least(c.cum_low, EXCLUDED.cum_low)", "c"
)


def _merge_into_candle(new: str, volume: str) -> str:
    """The SET list that merges partial ``new`` into stored candle ``c``: the one definition of
    the merge rules, used by the UPDATE of existing candles and by the insert's ON CONFLICT
    (a candle another worker created meanwhile)."""
    return f"""open = CASE WHEN {new}.first_at < c.first_at THEN {new}.open ELSE c.open END,
        high = greatest(c.high, {new}.high),
        low = least(c.low, {new}.low),
        close = CASE WHEN {new}.last_at >= c.last_at THEN {new}.close ELSE c.close END,
        oi = CASE WHEN {new}.last_at >= c.last_at THEN coalesce({new}.oi, c.oi)
                  ELSE coalesce(c.oi, {new}.oi) END,
        ticks = c.ticks + {new}.ticks,
        first_at = least(c.first_at, {new}.first_at),
        last_at = greatest(c.last_at, {new}.last_at),
        cum_low = least(c.cum_low, {new}.cum_low),
        cum_high = greatest(c.cum_high, {new}.cum_high),
        volume = {volume},
        updated_at = now()"""


def _exchange_minutes(source: str, minute: str) -> str:
    """SQL rows (exchange, minute, tz, open_at, trading_day): each distinct exchange and
    minute of ``source`` (a table or CTE with an ``exchange`` column and the ``minute``
    column) with its exchange's clock — the one place sessions are looked up for candles;
    an exchange missing from ``exchanges`` runs on UTC from midnight."""
    return f"""SELECT DISTINCT s.exchange, s.{minute} AS minute,
           coalesce(e.timezone, 'UTC') AS tz, coalesce(e.session_open, time '00:00') AS open_at,
           (s.{minute} AT TIME ZONE coalesce(e.timezone, 'UTC'))::date AS trading_day
    FROM {source} s LEFT JOIN exchanges e ON e.code = s.exchange"""


_ALIGNED_MINUTES: Final = f"""SELECT k.exchange, k.minute, k.trading_day,
           k.minute <= (k.trading_day + k.open_at) AT TIME ZONE k.tz AS session_first
    FROM ({_exchange_minutes(MINUTES_TABLE, "start")}) k"""

MERGE_CANDLES: Final = f"""
WITH buckets AS MATERIALIZED (
    -- Trading day and session start once per exchange and minute of the batch.
    {_ALIGNED_MINUTES}
),
partial AS (
    SELECT m.symbol, '1m'::text AS interval, m.start, b.trading_day, m.exchange, m.open,
           m.high, m.low, m.close, m.oi, m.ticks::bigint AS ticks, m.first_at, m.last_at,
           m.cum_low, m.cum_high, b.session_first
    FROM {MINUTES_TABLE} m JOIN buckets b ON b.exchange = m.exchange AND b.minute = m.start
),
queued AS (
    -- Their coarser candles are rolled up later, by whichever worker drains the queue.
    INSERT INTO {ROLLUP_QUEUE} (symbol, minute, exchange)
    SELECT symbol, start, exchange FROM {MINUTES_TABLE}
    ON CONFLICT DO NOTHING
),
series AS (
    -- A series with several minutes in one batch has a predecessor the merge cannot see.
    SELECT symbol FROM partial GROUP BY symbol HAVING count(*) > 1
),
updated AS (
    -- Candles that exist: one UPDATE each (an upsert would lock each row before updating it).
    UPDATE candles c SET
        {_merge_into_candle("p", _UPDATED_VOLUME)}
    FROM partial p
    WHERE c.symbol = p.symbol AND c.interval = '1m' AND c.start = p.start
      AND c.status <> 'reconciled'
    RETURNING {_RETURNED}
),
inserted AS (
    -- New candles; a candle another worker created meanwhile is merged by the same rules.
    INSERT INTO candles AS c (symbol, interval, start, trading_day, exchange, open, high, low,
                              close, oi, ticks, first_at, last_at, cum_low, cum_high,
                              session_first, volume)
    SELECT symbol, interval, start, trading_day, exchange, open, high, low, close, oi, ticks,
           first_at, last_at, cum_low, cum_high, session_first, {_NEW_VOLUME}
    FROM partial p0
    WHERE NOT EXISTS (SELECT 1 FROM candles e WHERE e.symbol = p0.symbol
                      AND e.interval = '1m' AND e.start = p0.start)
    ON CONFLICT (symbol, interval, start) DO UPDATE SET
        {_merge_into_candle("EXCLUDED", _MERGED_VOLUME)}
    WHERE c.status <> 'reconciled'
    RETURNING {_RETURNED}
),
merged AS (SELECT * FROM updated UNION ALL SELECT * FROM inserted)
SELECT m.*, m.has_next OR s.symbol IS NOT NULL AS recompute
FROM merged m LEFT JOIN series s ON s.symbol = m.symbol
"""
"""Merge the batch's 1m partials into the 1m ``candles``, volume included, and queue their
minutes for :func:`rollup_candles`; returns the touched candles and whether their series needs
:data:`UPDATE_VOLUMES`."""

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
UPDATE candles c SET volume = {_volume("c.cum_high", "c.cum_low", "c")}
FROM targets
WHERE c.symbol = targets.symbol AND c.interval = targets.interval AND c.start = targets.start
  AND c.status <> 'reconciled'
RETURNING {", ".join("c." + col.strip() for col in _CANDLE_COLUMNS.split(","))}
"""
"""Recompute the volumes of the given candles ($1 symbols, $2 intervals, $3 starts) and of
their successors from what is stored now; returns them as stored."""

DRAIN_ROLLUP_QUEUE: Final = f"""
WITH drained AS (
    DELETE FROM {ROLLUP_QUEUE} RETURNING symbol, minute, exchange
),
aligned AS (
    {_exchange_minutes("drained", "minute")}
),
buckets AS (
    -- Session alignment once per exchange and minute, not once per symbol.
    SELECT a.exchange, a.minute, steps.name AS interval, b.bucket, a.trading_day,
           b.bucket <= (a.trading_day + a.open_at) AT TIME ZONE a.tz AS session_first
    FROM aligned a CROSS JOIN {STEPS_SQL}
    CROSS JOIN LATERAL (SELECT mp_bucket_start(a.minute, steps.step, a.tz, a.open_at) AS bucket) b
    WHERE steps.name <> '1m'
)
SELECT d.symbol, b.interval, b.bucket AS start, min(b.trading_day) AS trading_day,
       bool_or(b.session_first) AS session_first, min(d.exchange) AS exchange
FROM drained d JOIN buckets b ON b.exchange = d.exchange AND b.minute = d.minute
GROUP BY d.symbol, b.interval, b.bucket
"""
"""Empty the roll-up queue; returns every coarser candle (5m to 1d) its minutes belong to."""

ROLLUP_LEVELS: Final[tuple[tuple[str, str], ...]] = (
    ("5m", "1m"), ("15m", "5m"), ("1h", "15m"), ("1d", "1h"),
)  # fmt: skip
"""(interval, the next finer interval it is built from), finest first: session-aligned buckets
of these lengths nest, so each level reads at most a handful of children per candle."""

ROLLUP_LEVEL: Final = f"""
WITH targets AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::date[], $4::bool[], $5::text[])
        AS t(symbol, start, trading_day, session_first, exchange)
),
rolled AS (
    -- Children cover disjoint buckets, so their start orders them.
    SELECT t.symbol, $6::text AS interval, t.start, t.trading_day, t.session_first, t.exchange,
           (array_agg(ch.open ORDER BY ch.start))[1] AS open, max(ch.high) AS high,
           min(ch.low) AS low, (array_agg(ch.close ORDER BY ch.start DESC))[1] AS close,
           (array_agg(ch.oi ORDER BY ch.start DESC) FILTER (WHERE ch.oi IS NOT NULL))[1] AS oi,
           sum(ch.ticks) AS ticks, min(ch.first_at) AS first_at, max(ch.last_at) AS last_at,
           min(ch.cum_low) AS cum_low, max(ch.cum_high) AS cum_high
    FROM targets t JOIN candles ch ON ch.symbol = t.symbol AND ch.interval = $7
         AND ch.start >= t.start - $8::interval AND ch.start < t.start + $9::interval
         AND (NOT $10 OR ch.trading_day = t.trading_day)
    GROUP BY t.symbol, t.start, t.trading_day, t.session_first, t.exchange
)
INSERT INTO candles AS c (symbol, interval, start, trading_day, exchange, open, high, low, close,
                          oi, ticks, first_at, last_at, cum_low, cum_high, session_first,
                          volume)
SELECT symbol, interval, start, trading_day, exchange, open, high, low, close, oi, ticks,
       first_at, last_at, cum_low, cum_high, session_first,
       {_volume("r.cum_high", "r.cum_low", "r")}
FROM rolled r
ON CONFLICT (symbol, interval, start) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    oi = EXCLUDED.oi, ticks = EXCLUDED.ticks, first_at = EXCLUDED.first_at,
    last_at = EXCLUDED.last_at, cum_low = EXCLUDED.cum_low, cum_high = EXCLUDED.cum_high,
    volume = EXCLUDED.volume, updated_at = now()
WHERE c.status <> 'reconciled'
RETURNING {_RETURNED}
"""
"""Recompute candles of interval $6 ($1 symbols, $2 starts, $3 trading days, $4 session-first
flags, $5 exchanges) from their $7 children — those starting in [start − $8, start + $9), and
of the same trading day when $10 — by the same rules as the 1m merge; a ``reconciled`` candle
(backfilled from the provider) is left as it is."""

_DAY: Final = timedelta(days=1)
_CHILDREN: Final[dict[str, tuple[timedelta, timedelta, bool]]] = {
    name: (_DAY, _DAY, True) if name == "1d" else (timedelta(0), CANDLE_INTERVALS[name], False)
    for name, _ in ROLLUP_LEVELS
}
"""Which children a candle is built from: those inside its bucket, except that a day candle
(which starts at the session open of its local date, see ``mp_bucket_start``) takes the hourly
candles of its trading day — pre-open ticks fall into an hour that starts before the open."""

ROLLUP_LOCK: Final = 0x6D70_726F_6C6C  # "mproll": one roll-up at a time across store workers


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


async def merge_candles(conn: Connection, partials: list[MinutePartial]) -> list[Candle]:
    """Merge one batch's 1m partials into the 1m candles and queue their roll-up (inside the
    caller's transaction); returns every 1m candle the batch changed, as stored."""
    if not partials:
        return []
    await conn.copy_records_to_table(MINUTES_TABLE, records=partials, columns=MINUTE_COLUMNS)
    merged = await conn.fetch(MERGE_CANDLES)
    redo = [r for r in merged if r["recompute"]]
    if not redo:
        return [candle_from_record(r) for r in merged]
    fixed = await _update_volumes(conn, redo)
    final = {(r["symbol"], r["interval"], r["start"]): r for r in (*merged, *fixed)}
    return [candle_from_record(r) for r in final.values()]


async def rollup_candles(conn: Connection) -> list[Candle]:
    """Drain the roll-up queue and recompute the 5m, 15m, 1h and 1d candles its minutes belong
    to, finest first; returns the candles changed, as stored, for live publishing.

    One transaction: a crash leaves the queue as it was. Several store workers may call this;
    one rolls up while the others skip the round (the next one picks up what queued meanwhile).
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ROLLUP_LOCK):
            return []
        targets = await conn.fetch(DRAIN_ROLLUP_QUEUE)
        if not targets:
            return []
        by_interval: dict[str, list[asyncpg.Record]] = {}
        for target in targets:
            by_interval.setdefault(target["interval"], []).append(target)
        merged: list[asyncpg.Record] = []
        redo: list[asyncpg.Record] = []
        for interval, child in ROLLUP_LEVELS:
            level = by_interval.get(interval)
            if not level:
                continue
            rows = await conn.fetch(
                ROLLUP_LEVEL,
                [t["symbol"] for t in level], [t["start"] for t in level],
                [t["trading_day"] for t in level], [t["session_first"] for t in level],
                [t["exchange"] for t in level], interval, child, *_CHILDREN[interval],
            )  # fmt: skip
            # Several buckets of one series in a round: each one's volume saw its
            # predecessor as it was before this statement.
            seen: dict[str, int] = {}
            for t in level:
                seen[t["symbol"]] = seen.get(t["symbol"], 0) + 1
            redo.extend(r for r in rows if r["has_next"] or seen[r["symbol"]] > 1)
            merged.extend(rows)
        fixed = await _update_volumes(conn, redo) if redo else []
    final = {(r["symbol"], r["interval"], r["start"]): r for r in (*merged, *fixed)}
    return [candle_from_record(r) for r in final.values()]


async def _update_volumes(conn: Connection, redo: list[asyncpg.Record]) -> list[asyncpg.Record]:
    return await conn.fetch(
        UPDATE_VOLUMES,
        [r["symbol"] for r in redo], [r["interval"] for r in redo], [r["start"] for r in redo],
    )  # fmt: skip


async def close_due_candles(conn: Connection, grace_seconds: float) -> None:
    """Mark ended buckets closed and file finished days into the daily price history."""
    await conn.execute(CLOSE_DUE, grace_seconds)

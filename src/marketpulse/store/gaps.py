"""Gap repair: feed outages recorded per instrument and filled from the provider's history.

Ingest reports each outage on ``{prefix}:gaps`` (see :mod:`marketpulse.bus.gaps`). The store
role records one ``feed_gaps`` row per symbol, measures the jump in cumulative volume across the
outage from the stored ticks (that volume traded while we were blind, with or without a REST
source), and — when the provider has REST history and ``GAP_REPAIR_ENABLED`` — waits until the
outage's last minute has ended, backfills the 1m candles of the window as ``reconciled`` and
rebuilds the higher intervals they belong to. A gap the provider cannot fill is marked
``unrepairable`` with the reason; nothing is retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from marketpulse.bus.firehose import stream_entries
from marketpulse.bus.gaps import OUTAGE_FIELD, OutageReport
from marketpulse.config import Settings
from marketpulse.feeds.base import FeedError
from marketpulse.feeds.history import HistoryRequest
from marketpulse.feeds.registry import UnknownFeedError, feed_spec, lookup_symbols
from marketpulse.store.backfill import roll_up, store_history
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.sessions import TradingSessions, Window, load_sessions

log = logging.getLogger(__name__)

GROUP: Final = "store"
_MINUTE: Final = timedelta(minutes=1)
_decoder = msgspec.json.Decoder(OutageReport)

Outcome = tuple[str, str | None, int]
"""A gap's final status, its detail and how many candles the repair stored."""

_VOLUME_JUMP: Final = """
SELECT (SELECT volume FROM ticks WHERE symbol = $1 AND time >= $3 AND volume IS NOT NULL
        ORDER BY time LIMIT 1)
     - (SELECT volume FROM ticks WHERE symbol = $1 AND time <= $2 AND volume IS NOT NULL
        ORDER BY time DESC LIMIT 1)
"""


def repair_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole minutes an outage touched: ``[floor(start), ceil(end))``."""
    first = start.replace(second=0, microsecond=0)
    last = end.replace(second=0, microsecond=0)
    if last < end:
        last += _MINUTE
    return first, max(last, first + _MINUTE)


class GapRepairer:
    """The store role's consumer of reported outages."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings) -> None:
        self._redis = redis
        self._pool = pool
        self._settings = settings
        self._consumer = settings.consumer_name
        self.recorded = 0
        self.repaired = 0
        self.off_session = 0
        self._sessions: TradingSessions | None = None
        self._sessions_at = 0.0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Return from :meth:`run` after the current read (a blocked Redis read is not
        cancelled: redis-py can hang on a cancelled blocking command)."""
        self._stopping.set()

    async def run(self) -> None:
        """Handle outages until :meth:`stop`; an entry is acknowledged once its gaps are final
        (an outage interrupted by the stop stays pending and is handled after a restart)."""
        key = self._settings.gaps_key
        delay = 0.5
        start_id = "0"  # our own pending entries first (a restart mid-repair), then new ones
        while not self._stopping.is_set():
            try:
                await self._ensure_group()
                reply = await self._redis.xreadgroup(
                    GROUP, self._consumer, {key: start_id}, count=10, block=1000
                )
                delay = 0.5
            except (RedisError, OSError) as exc:
                log.warning("gap repair cannot read %s: %s", key, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            entries = [e for _, batch in stream_entries(reply) for e in batch]
            if not entries and start_id == "0":
                start_id = ">"
                continue
            for entry_id, fields in entries:
                if self._stopping.is_set():
                    return
                raw = fields.get(OUTAGE_FIELD) if fields else None
                if raw is not None:
                    try:
                        await self.handle(_decoder.decode(raw))
                    except msgspec.DecodeError as exc:
                        log.error("unreadable outage report %s skipped: %s", entry_id, exc)
                    except DATABASE_ERRORS as exc:
                        log.warning("gap repair waits for the database: %s", exc)
                        await asyncio.sleep(delay)
                        break  # not acknowledged: read again
                await self._redis.xack(key, GROUP, entry_id)

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._settings.gaps_key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _trading_sessions(self) -> TradingSessions:
        """The exchanges' sessions, re-read at most every 10 minutes (holidays get edited)."""
        now = time.monotonic()
        if self._sessions is None or now - self._sessions_at > 600:
            self._sessions = await load_sessions(self._pool)
            self._sessions_at = now
        return self._sessions

    async def handle(self, report: OutageReport) -> None:
        """Record the in-session part of the outage for each symbol, then repair what the
        provider can fill. Parts outside the exchange's session (nights, weekends, holidays
        of the ``exchanges`` table) lost nothing and are left out."""
        start = datetime.fromtimestamp(report.start, UTC)
        end = datetime.fromtimestamp(report.end, UTC)
        sessions = await self._trading_sessions()
        gaps: dict[str, list[Window]] = {}
        for symbol in report.symbols:
            windows = sessions.windows(symbol, start, end)
            if not windows:
                self.off_session += 1
                continue
            gaps[symbol] = windows
            for gap_start, gap_end in windows:
                jump = await self._pool.fetchval(_VOLUME_JUMP, symbol, gap_start, gap_end)
                await self._pool.execute(
                    "INSERT INTO feed_gaps (feed, symbol, gap_start, gap_end, reason, "
                    "volume_jump) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (feed, symbol, "
                    "gap_start) DO UPDATE SET gap_end = EXCLUDED.gap_end, "
                    "volume_jump = EXCLUDED.volume_jump",
                    report.feed, symbol, gap_start, gap_end, report.reason, jump,
                )  # fmt: skip
                self.recorded += 1
                if jump:
                    log.warning("%s: cumulative volume jumped by %d across a %s outage (%s)",
                                symbol, jump, report.feed, report.reason)  # fmt: skip
        if not gaps:
            return
        outcomes = await self._repair(report.feed, gaps)
        for (symbol, gap_start), (status, detail, count) in outcomes.items():
            await self._pool.execute(
                "UPDATE feed_gaps SET status = $4, detail = $5, candles = candles + $6, "
                "repaired_at = CASE WHEN $4 = 'repaired' THEN now() END "
                "WHERE feed = $1 AND symbol = $2 AND gap_start = $3",
                report.feed, symbol, gap_start, status, detail, count,
            )  # fmt: skip

    async def _repair(
        self, feed: str, gaps: dict[str, list[Window]]
    ) -> dict[tuple[str, datetime], tuple[str, str | None, int]]:
        """Refill each (symbol, window) from the provider's 1m history: its status, detail and
        how many candles it got."""
        keys = [(symbol, w[0]) for symbol, windows in gaps.items() for w in windows]

        def every(status: str, detail: str | None) -> dict[tuple[str, datetime], Outcome]:
            return dict.fromkeys(keys, (status, detail, 0))

        if not self._settings.gap_repair_enabled:
            return every("unrepairable", "gap repair is disabled (GAP_REPAIR_ENABLED=false)")
        try:
            spec = feed_spec(feed)
        except UnknownFeedError as exc:
            return every("unrepairable", str(exc))
        if spec.history is None:
            return every("unrepairable", f"{feed} has no REST history to repair from")
        # The provider only has a minute once it has ended.
        latest = max(repair_window(*w)[1] for windows in gaps.values() for w in windows)
        wait = (latest - datetime.now(UTC)).total_seconds() + 2.0
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            if self._stopping.is_set():
                return every("open", "the store stopped before the provider had the window")
        targets, unknown = await lookup_symbols(feed, self._settings, self._pool, list(gaps))
        outcomes: dict[tuple[str, datetime], Outcome] = {}
        for symbol in unknown:
            for window in gaps[symbol]:
                outcomes[(symbol, window[0])] = (
                    "unrepairable", f"{feed} does not know {symbol}; run `marketpulse "
                    f"instruments sync --provider {feed}`", 0,
                )  # fmt: skip
        for target in targets:
            for window in gaps[target.symbol]:
                first, last = repair_window(*window)
                count = 0
                try:
                    request = HistoryRequest(target, "1m", first, last)
                    async for page in spec.history(self._settings, request):
                        async with self._pool.acquire() as conn:
                            count += await store_history(
                                conn, target, "1m", first, last, page, feed
                            )
                    async with self._pool.acquire() as conn:
                        await roll_up(conn, target.symbol, first, last)
                except (FeedError, OSError, ValueError) as exc:
                    outcomes[(target.symbol, window[0])] = (
                        "unrepairable", f"history request failed: {exc}", count,
                    )  # fmt: skip
                    continue
                outcomes[(target.symbol, window[0])] = ("repaired", None, count)
                self.repaired += 1
        return outcomes


async def gap_summary(pool: asyncpg.Pool) -> dict[str, int]:
    """Gaps by status, for ``/stats``."""
    rows = await pool.fetch("SELECT status, count(*) AS n FROM feed_gaps GROUP BY status")
    counts = dict.fromkeys(("open", "repaired", "unrepairable"), 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts

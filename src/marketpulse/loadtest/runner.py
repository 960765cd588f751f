"""Run one scenario end to end and measure it.

Order of a run (each step a separate OS process unless said otherwise):

1. Servers: ``REDIS_URL``/``DATABASE_URL`` (or embedded ones in a temporary home); a fresh
   database ``mp_e2e_<tag>`` and Redis key prefixes ``mpe2e-<tag>…``, removed afterwards, so a
   run never touches anyone's data and can be repeated.
2. Kite: the generator (paused) and the instrument master synced from it into the run's
   database. Sim: nothing — the simulator runs inside ingest.
3. The store and API processes, then the WebSocket clients, subscribed before any tick flows;
   then ingest. Kite: once the feed has subscribed every instrument, the generator starts.
4. Warm-up, then the measuring window: counters and CPU at both ends, RSS sampled throughout.
5. Close: pause the generator and wait until ingest has received every tick it sent (Kite), or
   stop ingest (sim, which flushes); wait for the store to catch up; stop the clients once
   they go quiet; stop the service.
6. Count rows in PostgreSQL, measure the ceilings on the run's own data, clean up.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx

from marketpulse.bus.connection import create_redis
from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD, Entry
from marketpulse.bus.status import read_reports
from marketpulse.config import Settings
from marketpulse.emulators.kite import TEST_ACCESS_TOKEN, TEST_API_KEY
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.loadtest.ceilings import broadcast_ceiling, copy_ceiling, xadd_ceiling
from marketpulse.loadtest.machine import describe_machine, load_average
from marketpulse.loadtest.monitor import Monitor, local_server_pid
from marketpulse.loadtest.probe import probe_firehose
from marketpulse.loadtest.processes import Child, ChildError, spawn
from marketpulse.loadtest.report import RunReport, percentiles
from marketpulse.loadtest.scenario import (
    Scenario,
    client_channels,
    format_roles,
    instrument_symbols,
    split_evenly,
)
from marketpulse.store.database import asyncpg_dsn, create_pool, upgrade

Progress = Callable[[str], None]

START_TIMEOUT = 120.0
BROADCAST_SOURCE_TICKS = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_named(url: str, name: str) -> str:
    head, _, _ = asyncpg_dsn(url).rpartition("/")
    return f"{head}/{name}"


class Run:
    """The state of one run; :meth:`execute` fills :attr:`report`."""

    def __init__(self, scenario: Scenario, redis_url: str, admin_url: str, home: Path,
                 progress: Progress) -> None:  # fmt: skip
        self.scenario = scenario
        self.tag = uuid.uuid4().hex[:10]
        self.redis_url = redis_url
        self.admin_url = admin_url
        self.database = f"mp_e2e_{self.tag}"
        self.database_url = _database_named(admin_url, self.database)
        self.home = home
        self.dir = home / "run"
        self.progress = progress
        self.settings = Settings(
            redis_url=redis_url, database_url=self.database_url, marketpulse_home=home,
            redis_key_prefix=f"mpe2e-{self.tag}", cache_key_prefix=f"mpe2e-{self.tag}-market",
            symbol_stream_prefix=f"mpe2e-{self.tag}-stream",
        )  # fmt: skip
        self.monitor = Monitor()
        self.redis = create_redis(redis_url)
        self.children: list[Child] = []
        self.generator: Child | None = None
        self.generator_url = ""
        self.http = httpx.AsyncClient(timeout=30)
        self.report = RunReport(scenario.as_dict(), describe_machine())
        self.symbols = instrument_symbols(scenario, ist_date(time.time()))
        self.channels = client_channels(symbols=self.symbols, clients=scenario.clients,
                                        per_client=scenario.channels_per_client)  # fmt: skip
        self.client_workers: list[Child] = []
        self.api_port = 0
        self._window_ns = (0, 0)
        self._window_end = 0.0

    # ------------------------------------------------------------------ the run

    async def execute(self) -> RunReport:
        self.dir.mkdir(parents=True, exist_ok=True)
        sampler: asyncio.Task[None] | None = None
        try:
            await self._create_database()
            self._watch_servers()
            if self.scenario.feed == "kite":
                await self._start_generator()
            services = await self._start_service(without_ingest=True)
            await self._start_clients()
            ready_ns = time.time_ns()
            sampler = asyncio.create_task(self.monitor.run())
            ingest = await self._start_service(without_ingest=False)
            await self._open_tap()
            await asyncio.sleep(self.scenario.warmup)
            await self._window()
            await self._close_tap(ingest)
            await self._stop_clients()
            for child in reversed(services):
                await child.stop()
            if self.generator is not None:
                await self.generator.stop()
            self.report.roles = {name: asdict(u) for name, u in self.monitor.finish().items()}
            await self._count(ready_ns)
            if self.scenario.ceilings:
                await self._ceilings()
        finally:
            if sampler is not None:
                sampler.cancel()
            for child in reversed(self.children):
                await child.stop(grace=10)
            await self._cleanup()
        self.report.machine["load_after"] = load_average()
        return self.report

    async def _create_database(self) -> None:
        admin = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        await upgrade(self.database_url)

    def _watch_servers(self) -> None:
        redis_pid = local_server_pid(self.redis_url)
        if redis_pid is not None:
            self.monitor.watch("redis", redis_pid)
        postgres_pid = local_server_pid(self.admin_url)
        if postgres_pid is not None:
            self.monitor.watch("postgres", postgres_pid, with_children=True)
        if redis_pid is None or postgres_pid is None:
            self.report.notes.append(
                "Redis/PostgreSQL server processes not visible (remote or other user): "
                "their CPU and RSS are not in the role table"
            )

    async def _start_generator(self) -> None:
        s = self.scenario
        self.progress(f"starting the Kite generator ({s.instruments:,} instruments)")
        child = await spawn("generator", ["marketpulse.loadtest.generator", "--rate",
                                          str(s.rate), "--instruments", str(s.instruments),
                                          "--seed", str(s.seed), "--slice-ms", str(s.slice_ms)],
                            is_ready=lambda line: line.startswith("READY "))  # fmt: skip
        self.children.append(child)
        self.generator = child
        line = await child.wait_ready(START_TIMEOUT)
        self.generator_url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.monitor.watch("generator", child.pid)
        await self._sync_kite_instruments()

    async def _sync_kite_instruments(self) -> None:
        from marketpulse.feeds.registry import feed_spec
        from marketpulse.store.instruments import sync_instruments

        fetch = feed_spec("kite").instruments
        assert fetch is not None
        records = await fetch(self.settings.model_copy(update={
            "kite_api_url": self.generator_url}), None)  # fmt: skip
        pool = await create_pool(self.database_url, max_size=2)
        try:
            await sync_instruments(pool, "kite", records)
        finally:
            await pool.close()

    def _env(self, api_port: int) -> dict[str, str]:
        s, tag = self.scenario, self.tag
        symbols_file = self.dir / "symbols.csv"
        if not symbols_file.exists():
            symbols_file.write_text(
                "symbol_name,enabled\n" + "".join(f"{sym},true\n" for sym in self.symbols)
            )
        env = dict(os.environ)
        env.update({
            "REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url,
            "MARKETPULSE_HOME": str(self.home), "REDIS_KEY_PREFIX": f"mpe2e-{tag}",
            "CACHE_KEY_PREFIX": f"mpe2e-{tag}-market",
            "SYMBOL_STREAM_PREFIX": f"mpe2e-{tag}-stream", "FEEDS": s.feed, "SUBSCRIBE": "",
            "SYMBOLS_FILE": str(symbols_file), "SUBSCRIBE_MODE": "full",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "API_HOST": "127.0.0.1", "API_PORT": str(api_port), "AUTH_ENABLED": "false",
            "SIM_TICKS_PER_SECOND": str(s.rate), "SIM_EXTRA_INSTRUMENTS": str(
                s.extra_instruments), "SIM_ALWAYS_OPEN": "true", "SIM_SEED": str(s.seed),
        })  # fmt: skip
        if s.feed == "kite":
            ws = self.generator_url.replace("http://", "ws://")
            env.update(
                {
                    "KITE_WS_URL": ws,
                    "KITE_API_URL": self.generator_url,
                    "KITE_API_KEY": TEST_API_KEY,
                    "KITE_ACCESS_TOKEN": TEST_ACCESS_TOKEN,
                }
            )
        return env

    async def _start_service(self, *, without_ingest: bool) -> list[Child]:
        """Start the process groups without ingest (first) or with it (last)."""
        started = []
        for group in self.scenario.roles:
            if ("ingest" in group) == without_ingest:
                continue
            name = "+".join(group)
            port = _free_port() if "api" in group else 0
            if "api" in group:
                self.api_port = port
            self.progress(f"starting {name}")
            child = await spawn(
                name, ["marketpulse.cli", "serve", "--roles", ",".join(group)],
                env=self._env(port),
                is_ready=lambda line: "serving on" in line or "running (ready in" in line,
            )  # fmt: skip
            self.children.append(child)
            await child.wait_ready(START_TIMEOUT)
            self.monitor.watch(name, child.pid)
            started.append(child)
        return started

    async def _start_clients(self) -> None:
        s = self.scenario
        if s.clients == 0:
            return
        api = next((g for g in s.roles if "api" in g), None)
        if api is not None and "ingest" in api:
            self.report.notes.append(
                "ingest shares the API process: clients subscribe after ticks start flowing "
                "(deliveries are expected only for ticks received after they subscribed)"
            )
            return  # started after ingest, see _open_tap
        await self._spawn_clients()

    async def _spawn_clients(self) -> None:
        s = self.scenario
        self.progress(f"connecting {s.clients} WebSocket clients")
        url = f"ws://127.0.0.1:{self.api_port}/ws" + ("?batch=true" if s.batch else "")
        workers = []
        for index, share in enumerate(split_evenly(self.channels, s.worker_count)):
            spec = self.dir / f"channels-{index}.json"
            spec.write_text(json.dumps(share))
            args = ["marketpulse.loadtest.clients", "--url", url, "--channels", str(spec),
                    "--out", str(self.dir / f"clients-{index}.json")]  # fmt: skip
            if not s.deflate:
                args.append("--no-deflate")
            child = await spawn(f"clients-{index}", args, stdin=True,
                                is_ready=lambda line: line == "READY")  # fmt: skip
            self.children.append(child)
            workers.append(child)
        for child in workers:
            await child.wait_ready(START_TIMEOUT)
            self.monitor.watch("clients", child.pid)
        self.client_workers = workers

    async def _generator_stats(self) -> dict[str, Any]:
        reply = await self.http.get(f"{self.generator_url}/loadtest/stats")
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    async def _open_tap(self) -> None:
        s = self.scenario
        if s.clients and not self.client_workers:
            await self._spawn_clients()
        if s.feed != "kite":
            return
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            stats = await self._generator_stats()
            if stats["full"] >= s.instruments:
                break
            if time.monotonic() > deadline:
                raise ChildError(f"the Kite feed subscribed only {stats['full']} of "
                                 f"{s.instruments} instruments in full mode")  # fmt: skip
            await asyncio.sleep(0.2)
        await self.http.post(f"{self.generator_url}/loadtest/start")
        self.progress(f"generator started at {s.rate:,.0f} ticks/s")

    # ------------------------------------------------------------------ counters

    async def _stats(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.settings.stats_key))
        out = {k.decode(): int(v) for k, v in raw.items()}
        if self.generator is not None:
            gen = await self._generator_stats()
            out["sent"] = int(gen["sent"])
            out["frames_dropped"] = int(gen["frames_dropped"])
        else:
            out["sent"] = out.get("received", 0)
        return out

    async def _window(self) -> None:
        s = self.scenario
        self.progress(f"measuring for {s.duration:g} s")
        start = await self._stats()
        started = time.monotonic()
        self.report.machine["load_before"] = load_average()
        self.monitor.start_window(started)
        self._window_ns = (time.time_ns(), 0)
        backlog = 0
        arrivals = array.array("q")
        probe = asyncio.create_task(
            probe_firehose(self.redis, self.settings.firehose_keys, arrivals)
        )
        try:
            while (elapsed := time.monotonic() - started) < s.duration:
                await asyncio.sleep(min(1.0, s.duration - elapsed))
                now = await self._stats()
                backlog = max(backlog, now.get("published", 0) - now.get("stored", 0))
                self.report.timeline.append({"t": round(time.monotonic() - started, 2), **now})
        finally:
            probe.cancel()
        self.report.redis_latency = percentiles(arrivals.tolist())
        end = await self._stats()
        ended = time.monotonic()
        self._window_ns = (self._window_ns[0], time.time_ns())
        self.monitor.end_window(ended)
        seconds = ended - started
        self.report.window_seconds = seconds
        self.report.max_store_backlog = backlog
        rates = self.report.rates
        rates.offered = s.rate
        rates.published = (end["sent"] - start["sent"]) / seconds
        rates.into_redis = (end.get("published", 0) - start.get("published", 0)) / seconds
        rates.stored = (end.get("stored", 0) - start.get("stored", 0)) / seconds
        self._window_end = ended

    async def _close_tap(self, ingest: list[Child]) -> None:
        """End the load and wait for the pipeline to settle, then take the final counts."""
        within = max(60.0, 2 * self.scenario.duration)
        if self.generator is not None:
            await self.http.post(f"{self.generator_url}/loadtest/pause")
            gen = await self._generator_stats()
            got = await self._until(lambda st: st.get("received", 0) >= gen["sent"], within,
                                    "ingest to receive every tick sent")  # fmt: skip
            if got.get("received", 0) < gen["sent"]:
                # Say why, as far as the processes can tell: the generator's connections and
                # what ingest last logged (a replaced connection loses its in-flight frames).
                self.report.notes.append(f"generator at the end: {gen}")
                for child in ingest:
                    tail = [line for line in child.output().splitlines() if line][-8:]
                    if tail:
                        self.report.notes.append(f"{child.name} last logged: " + " | ".join(tail))
            # While the store is far behind, ingest parks new firehose entries in its spill
            # file and replays them as the store catches up; only a running ingest does that.
            wrote = await self._until(
                lambda st: st.get("published", 0) >= st.get("received", 0), within,
                "ingest to write every tick it received to Redis",
            )  # fmt: skip
            reports = await read_reports(self.redis, self.settings)
            self.report.counts.spilled = sum(r.spilled for r in reports)
            held = wrote.get("received", 0) - wrote.get("published", 0)
            if held > 0:
                self.report.notes.append(
                    f"ingest still held {held:,} ticks (buffer or spill file) after {within:.0f} "
                    "s; a restarted ingest replays its spill file, but this run counts them as "
                    "not stored"
                )
        for child in ingest:
            # Stopping ingest flushes its publisher. The simulator cannot be paused, so a
            # process sharing it with the store stops too (its store drains on the way out).
            if child.name == "ingest" or self.generator is None:
                await child.stop()
        stats = await self._until(lambda st: st.get("stored", 0) >= st.get("published", 0),
                                  within, "the store to catch up")  # fmt: skip
        self.report.drain_seconds = time.monotonic() - self._window_end
        counts = self.report.counts
        counts.published = stats["sent"]
        counts.received = stats.get("received", 0)
        counts.into_redis = stats.get("published", 0)
        counts.emulator_frames_dropped = stats.get("frames_dropped", 0)
        for child in ingest:
            await child.stop()

    def _store_running(self) -> bool:
        return any(
            "store" in child.name.split("+") and child.proc.returncode is None
            for child in self.children
        )

    async def _until(self, check: Callable[[dict[str, int]], bool], within: float,
                     what: str) -> dict[str, int]:  # fmt: skip
        deadline = time.monotonic() + within
        while True:
            stats = await self._stats()
            if check(stats) or not self._store_running():
                return stats
            if time.monotonic() > deadline:
                self.report.notes.append(f"gave up waiting {within:.0f} s for {what}: {stats}")
                return stats
            await asyncio.sleep(0.2)

    async def _stop_clients(self) -> None:
        workers = self.client_workers
        for child in workers:
            await child.send("stop")
        delivered = 0
        latencies = array.array("q")
        in_window = 0
        first, last = self._window_ns[0] // 10**9, self._window_ns[1] // 10**9
        for index, child in enumerate(workers):
            await _wait_exit(child, 120)
            out = self.dir / f"clients-{index}.json"
            if not out.exists():
                self.report.notes.append(f"{child.name} wrote no result:\n{child.output()}")
                continue
            result = json.loads(out.read_text())
            for tally in result["clients"]:
                delivered += tally["received"]
                if tally["closed"] and tally["closed_ns"] < self._window_ns[1]:
                    self.report.counts.clients_disconnected += 1
                    if len(self.report.notes) < 20:
                        self.report.notes.append(f"a client was disconnected: {tally['closed']}")
            # Whole seconds strictly inside the window (the edges are partial seconds).
            in_window += sum(v for k, v in result["timeline"].items() if first < int(k) < last)
            latencies.frombytes(out.with_suffix(".lat").read_bytes())
        self.report.counts.delivered = delivered
        seconds_inside = max(0, last - first - 1)
        self.report.rates.delivered = in_window / seconds_inside if seconds_inside else 0.0
        self.report.latency = percentiles(latencies.tolist())

    async def _count(self, ready_ns: int) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            self.report.counts.stored = int(await conn.fetchval("SELECT count(*) FROM ticks"))
            per_symbol = {
                row["symbol"]: int(row["n"])
                for row in await conn.fetch(
                    "SELECT symbol, count(*) AS n FROM ticks WHERE ts_recv >= $1 GROUP BY symbol",
                    ready_ns,
                )
            }
        finally:
            await conn.close()
        self.report.counts.expected_deliveries = sum(
            per_symbol.get(channel, 0) for channels in self.channels for channel in channels
        )
        if self.report.storage_loss:
            self.report.notes.append(
                f"STORAGE LOSS: {self.report.storage_loss:,} ticks published but not stored"
            )

    # ------------------------------------------------------------------ ceilings

    async def _firehose_sample(self, limit: int) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        keys = self.settings.firehose_keys
        per_shard = limit // len(keys) + 1
        for key in keys:
            entries = cast(list[Entry], await self.redis.xrange(key, count=per_shard))
            for _, fields in entries:
                out.append((fields[KEY_FIELD].decode(), fields[TICK_FIELD].decode()))
        return out[:limit]

    async def _ceilings(self) -> None:
        self.progress("measuring the ceilings (redis-benchmark XADD, raw COPY, bare websockets)")
        sample = await self._firehose_sample(BROADCAST_SOURCE_TICKS)
        ceilings = self.report.ceilings
        if sample:
            key = f"{self.settings.redis_key_prefix}:xadd-ceiling"
            ceilings.redis_xadd_per_s = await asyncio.to_thread(
                xadd_ceiling, self.redis_url, key, sample[0][1]
            )
        if ceilings.redis_xadd_per_s is None:
            self.report.notes.append(
                "redis-benchmark (or valkey-benchmark) not found: XADD ceiling not measured"
            )
        ceilings.copy_rows_per_s = await copy_ceiling(self.database_url)
        if self.scenario.clients:
            messages = [
                (key, '{"message_type":"data","channel":"' + key + '","data":' + tick + "}")
                for key, tick in sample
            ]
            result = await broadcast_ceiling(messages, self.channels, self.scenario.worker_count,
                                             self.dir, deflate=self.scenario.deflate)  # fmt: skip
            if result is not None:
                ceilings.broadcast_messages_per_s = result.messages_per_s
                ceilings.broadcast_ticks_per_s = result.ticks_per_s

    # ------------------------------------------------------------------ cleanup

    async def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()
        with contextlib.suppress(Exception):
            for prefix in (f"mpe2e-{self.tag}", f"{{mpe2e-{self.tag}}}"):  # + hash-tagged keys
                keys = [k async for k in self.redis.scan_iter(match=f"{prefix}*", count=1000)]
                for i in range(0, len(keys), 1000):
                    await self.redis.delete(*keys[i : i + 1000])
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            admin = await asyncpg.connect(asyncpg_dsn(self.admin_url))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await admin.close()


async def _wait_exit(child: Child, within: float) -> None:
    try:
        await asyncio.wait_for(child.proc.wait(), within)
    except TimeoutError:
        await child.stop(grace=5)
    await child.stop(grace=5)


@contextlib.contextmanager
def _servers(redis_url: str | None, database_url: str | None,
             home: Path) -> Iterator[tuple[str, str]]:  # fmt: skip
    """The given URLs, else REDIS_URL/DATABASE_URL, else embedded servers under ``home``."""
    settings = Settings()
    redis_url = redis_url or settings.redis_url
    database_url = database_url or settings.database_url
    if redis_url and database_url:
        yield redis_url, database_url
        return
    from marketpulse.embedded import EmbeddedServices

    # The home is deleted after the run: no Redis snapshots (a multi-GB dump mid-run competes
    # with everything measured).
    with EmbeddedServices(home / "servers", want_redis=not redis_url,
                          want_postgres=not database_url,
                          redis_snapshots=False) as services:  # fmt: skip
        redis_url = redis_url or services.redis_url
        database_url = database_url or services.database_url
        assert redis_url is not None
        assert database_url is not None
        yield redis_url, database_url


def run_scenario(
    scenario: Scenario,
    *,
    redis_url: str | None = None,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Run ``scenario`` (blocking) and return its report; see the module docstring."""
    scenario.validate()
    say = progress or (lambda message: None)
    home = Path(tempfile.mkdtemp(prefix="mp-e2e-"))
    try:
        with _servers(redis_url, database_url, home) as (redis, admin):
            say(f"{scenario.label()} (roles {format_roles(scenario.roles)})")
            return asyncio.run(Run(scenario, redis, admin, home, say).execute())
    finally:
        shutil.rmtree(home, ignore_errors=True)

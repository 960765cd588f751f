"""How the whole path's cost grows: ``marketpulse bench e2e`` swept over instruments, clients and
offered rate, one thing at a time, from the headline scenario (10k ticks/s, 1,000 instruments,
100 clients).

* instruments: 100, 1,000, 5,000, 9,000 (10k ticks/s, 100 clients; 9,000 is the most the
  Kite generator streams: 3 connections × 3,000 tokens — ``--feed sim`` goes further);
* clients: 0, 10, 50, 100 (10k ticks/s, 1,000 instruments);
* offered rate: 1k, 10k, 50k, 100k ticks/s (1,000 instruments, 10 clients).

Shared points (10k/1,000/100 and 10k/1,000/10) run once.

Each run is ``E2E_SWEEP_SECONDS`` (default 20) seconds after a 2 s warm-up, without the ceilings
(``marketpulse bench e2e`` measures those). Each run's full report goes to standard error as it
finishes (and its JSON to ``E2E_SWEEP_DIR`` when set); then a summary table: what was
sent, stored and delivered per second, the storage loss, latency to the clients and to Redis,
CPU per role (and all processes together), and each service role's peak RSS. About 15 minutes
with the default duration. Uses ``REDIS_URL``/``DATABASE_URL`` when set, else embedded servers.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import Result
from marketpulse.loadtest.report import RunReport, render
from marketpulse.loadtest.runner import run_scenario
from marketpulse.loadtest.scenario import Scenario

SECONDS = float(os.environ.get("E2E_SWEEP_SECONDS", "20"))


def sweep() -> list[tuple[str, Scenario]]:
    """(what varies, scenario) in run order; the headline scenario is run once."""

    def scenario(rate: float, instruments: int, clients: int) -> Scenario:
        return Scenario(feed="kite", rate=rate, instruments=instruments, clients=clients,
                        duration=SECONDS, ceilings=False)  # fmt: skip

    runs = [("instruments", scenario(10_000, n, 100)) for n in (100, 1_000, 5_000, 9_000)]
    runs += [("clients", scenario(10_000, 1_000, n)) for n in (0, 10, 50)]
    runs += [("rate", scenario(r, 1_000, 10)) for r in (1_000, 50_000, 100_000)]
    return runs


def _mib(report: RunReport, role: str) -> str:
    usage = report.roles.get(role)
    return "—" if usage is None else f"{usage['peak_rss'] / 2**20:,.0f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def summary(rows: list[tuple[str, Scenario, RunReport]]) -> Table:
    table = Table(title=f"bench e2e swept one variable at a time ({SECONDS:g} s windows)")
    columns = ("varies", "rate/s", "instr", "clients", "sent/s", "stored/s", "loss",
               "delivered/s", "p50 ms", "p99 ms", "→Redis p99 ms", "CPU cores (all)",
               "ingest/store/api/redis/pg cores", "ingest/store/api RSS MiB")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name == "varies" else "right")
    for varies, s, report in rows:
        cores = {name: usage["cores"] for name, usage in report.roles.items()}
        table.add_row(
            varies, f"{s.rate:,.0f}", f"{s.instruments:,}", f"{s.clients}",
            f"{report.rates.published:,.0f}", f"{report.rates.stored:,.0f}",
            f"{report.storage_loss:,}", f"{report.rates.delivered:,.0f}",
            _ms(report.latency.p50_ms), _ms(report.latency.p99_ms),
            _ms(report.redis_latency.p99_ms), f"{sum(cores.values()):.2f}",
            "/".join(f"{cores.get(r, 0.0):.2f}" for r in ("ingest", "store", "api", "redis",
                                                          "postgres")),
            "/".join(_mib(report, r) for r in ("ingest", "store", "api")),
        )  # fmt: skip
    return table


def run() -> list[Result]:
    console = Console(stderr=True, soft_wrap=True)
    runs = sweep()
    for _, scenario in runs:  # a bad scenario fails now, not after an hour of the others
        scenario.validate()
    out = os.environ.get("E2E_SWEEP_DIR")
    rows: list[tuple[str, Scenario, RunReport]] = []
    results: list[Result] = []
    for index, (varies, scenario) in enumerate(runs):
        console.print(f"· {varies}: {scenario.label()}", highlight=False)
        report = run_scenario(scenario)
        render(report, console)
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            report.write_json(Path(out) / f"{index:02d}-{varies}.json")
        rows.append((varies, scenario, report))
        stored = max(report.rates.stored, 1e-9)
        results.append(Result(
            name=f"{scenario.rate:,.0f}/s, {scenario.instruments} instr, "
                 f"{scenario.clients} clients: stored",
            ns_per_op=1e9 / stored, ops_per_s=report.rates.stored,
        ))  # fmt: skip
    console.print(summary(rows))
    return results

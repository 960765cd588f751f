"""The whole path under load: a few ``marketpulse bench e2e`` scenarios through the same runner.

Each scenario offers a fixed rate from the Kite emulator (its own process) to the service run
as one process per role, with WebSocket clients in their own processes, and reports what got
stored and delivered per second against the ceilings measured in the same run (raw COPY,
bare ``websockets`` broadcast). The scenarios vary one thing at a time — instruments, then
clients — so the table shows how the cost grows with each. Wall-clock seconds, one run each
(about a minute per scenario). Uses ``REDIS_URL``/``DATABASE_URL`` when set, otherwise
embedded servers. The full report of each run goes to standard error.
"""

from __future__ import annotations

from rich.console import Console

from bench import Result
from marketpulse.loadtest.report import RunReport, render
from marketpulse.loadtest.runner import run_scenario
from marketpulse.loadtest.scenario import Scenario

DURATION = 10.0
SCENARIOS = [
    Scenario(feed="kite", rate=5000, instruments=100, clients=10, duration=DURATION),
    Scenario(feed="kite", rate=5000, instruments=1000, clients=10, duration=DURATION),
    Scenario(feed="kite", rate=5000, instruments=1000, clients=50, duration=DURATION),
    Scenario(feed="sim", rate=5000, instruments=1000, clients=50, duration=DURATION),
]


def _results(scenario: Scenario, report: RunReport) -> list[Result]:
    label = (
        f"{scenario.feed} {scenario.rate:,.0f}/s, {scenario.instruments} instr, "
        f"{scenario.clients} clients"
    )
    rates, ceilings = report.rates, report.ceilings
    out: list[Result] = []
    stored = max(rates.stored, 1e-9)
    row = Result(name=f"{label}: stored", ns_per_op=1e9 / stored, ops_per_s=rates.stored)
    if ceilings.copy_rows_per_s:
        row["reference"] = "raw COPY"
        row["ratio"] = rates.stored / ceilings.copy_rows_per_s
    out.append(row)
    if scenario.clients:
        delivered = max(rates.delivered, 1e-9)
        row = Result(name=f"{label}: WS messages", ns_per_op=1e9 / delivered,
                     ops_per_s=rates.delivered)  # fmt: skip
        if ceilings.broadcast_messages_per_s:
            row["reference"] = "bare websockets"
            row["ratio"] = rates.delivered / ceilings.broadcast_messages_per_s
        out.append(row)
    return out


def run() -> list[Result]:
    console = Console(stderr=True, soft_wrap=True)
    results: list[Result] = []
    for scenario in SCENARIOS:
        report = run_scenario(scenario)
        render(report, console)
        results += _results(scenario, report)
    return results


if __name__ == "__main__":
    for item in run():
        ratio = f"  {item['ratio']:.2f}x {item['reference']}" if "ratio" in item else ""
        print(f"{item['name']:<55} {item['ops_per_s']:>12,.0f}/s{ratio}")

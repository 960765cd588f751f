"""One run's results: counts, rates, loss, latency, cost per role, ceilings — as JSON and as
rich tables.

Every rate is over the measuring window (after the warm-up, before the drain); counts cover
the whole run, so ``published - stored`` is the storage loss however late the store caught up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(slots=True)
class Counts:
    """Ticks at each stage over the whole run (``delivered``: WebSocket data messages)."""

    published: int = 0
    received: int = 0
    into_redis: int = 0
    stored: int = 0
    delivered: int = 0
    expected_deliveries: int = 0
    emulator_frames_dropped: int = 0
    clients_disconnected: int = 0
    spilled: int = 0
    """Ticks ingest parked in its spill file while the store was far behind (then replayed)."""


@dataclass(slots=True)
class Rates:
    """Per second over the window."""

    offered: float = 0.0
    published: float = 0.0
    into_redis: float = 0.0
    stored: float = 0.0
    delivered: float = 0.0


@dataclass(slots=True)
class Latency:
    """Frame receive (``ts_recv``) to a WebSocket client's receipt, in milliseconds."""

    samples: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None


@dataclass(slots=True)
class Ceilings:
    """Reference ceilings of the same run; ``None`` = not measured (the note says why)."""

    redis_xadd_per_s: float | None = None
    copy_rows_per_s: float | None = None
    broadcast_messages_per_s: float | None = None
    broadcast_ticks_per_s: float | None = None


@dataclass(slots=True)
class RunReport:
    """Everything one run measured; :meth:`complete` says whether every part was measured."""

    scenario: dict[str, Any]
    machine: dict[str, Any]
    window_seconds: float = 0.0
    drain_seconds: float | None = None
    counts: Counts = field(default_factory=Counts)
    rates: Rates = field(default_factory=Rates)
    latency: Latency = field(default_factory=Latency)
    redis_latency: Latency = field(default_factory=Latency)
    """``ts_recv`` → the tick's firehose entry in Redis, sampled (:mod:`.probe`)."""
    roles: dict[str, dict[str, float]] = field(default_factory=dict)
    ceilings: Ceilings = field(default_factory=Ceilings)
    max_store_backlog: int = 0
    timeline: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def storage_loss(self) -> int:
        return self.counts.published - self.counts.stored

    @property
    def delivery_ratio(self) -> float | None:
        expected = self.counts.expected_deliveries
        return self.counts.delivered / expected if expected else None

    def ratios(self) -> dict[str, float | None]:
        """Each stage's rate as a fraction of its ceiling."""
        c, r = self.ceilings, self.rates
        return {
            "redis_vs_xadd": _ratio(r.into_redis, c.redis_xadd_per_s),
            "stored_vs_copy": _ratio(r.stored, c.copy_rows_per_s),
            "delivered_vs_broadcast": _ratio(r.delivered, c.broadcast_messages_per_s),
        }

    def complete(self) -> bool:
        """Every stage counted, latency and roles measured (ceilings may be absent)."""
        needs_clients = int(self.scenario.get("clients", 0)) > 0
        return (
            self.window_seconds > 0
            and self.counts.published > 0
            and self.counts.stored > 0
            and {"ingest", "store", "api"} <= {r for name in self.roles for r in name.split("+")}
            and (not needs_clients or (self.counts.delivered > 0 and self.latency.samples > 0))
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["storage_loss"] = self.storage_loss
        out["delivery_ratio"] = self.delivery_ratio
        out["ratios"] = self.ratios()
        out["complete"] = self.complete()
        return out

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")


def _ratio(value: float, ceiling: float | None) -> float | None:
    return value / ceiling if ceiling else None


def percentiles(latencies_ns: list[int]) -> Latency:
    """p50/p99/p99.9/max of nanosecond latencies (nearest rank), in milliseconds."""
    if not latencies_ns:
        return Latency()
    ordered = sorted(latencies_ns)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))] / 1e6

    return Latency(n, rank(0.50), rank(0.99), rank(0.999), ordered[-1] / 1e6)


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}×"


def render(report: RunReport, console: Console) -> None:
    """The readable report: throughput and loss, latency, cost per role, notes."""
    s, c, r, ceil = report.scenario, report.counts, report.rates, report.ceilings
    m = report.machine
    console.print(
        f"[bold]marketpulse bench e2e[/] — feed {s['feed']}, offered {s['rate']:,.0f} ticks/s "
        f"over {s['instruments']:,} instruments, {s['clients']} WebSocket clients × "
        f"{s['channels_per_client']} channels, roles {s['roles']}, window "
        f"{report.window_seconds:.1f} s\n"
        f"machine: {m.get('cpu')}, {m.get('nproc')} CPUs, load average "
        f"{m.get('load_before')} → {m.get('load_after')}",
        highlight=False,
    )
    ratios = report.ratios()
    flow = Table(title="Throughput and loss (rates over the window)")
    for name, justify in [("stage", "left"), ("count", "right"), ("per s", "right"),
                          ("ceiling per s", "right"), ("vs ceiling", "right")]:  # fmt: skip
        flow.add_column(name, justify=justify)  # type: ignore[arg-type]
    flow.add_row("offered (target)", "", _n(r.offered), "", "")
    source = "sent by the Kite emulator" if s["feed"] == "kite" else "made by the simulator"
    flow.add_row(source, _n(c.published), _n(r.published), "", "")
    flow.add_row("received by ingest", _n(c.received), "", "", "")
    flow.add_row("written to Redis", _n(c.into_redis), _n(r.into_redis),
                 _n(ceil.redis_xadd_per_s) + " XADD", _x(ratios["redis_vs_xadd"]))  # fmt: skip
    flow.add_row("stored in PostgreSQL", _n(c.stored), _n(r.stored),
                 _n(ceil.copy_rows_per_s) + " COPY", _x(ratios["stored_vs_copy"]))  # fmt: skip
    flow.add_row("delivered to WebSocket clients", _n(c.delivered), _n(r.delivered),
                 _n(ceil.broadcast_messages_per_s) + " bare ws",
                 _x(ratios["delivered_vs_broadcast"]))  # fmt: skip
    console.print(flow)
    loss = "[green]0[/]" if report.storage_loss == 0 else f"[bold red]{report.storage_loss:,}[/]"
    delivery = report.delivery_ratio
    console.print(
        f"storage loss (published − stored): {loss}; max store backlog "
        f"{report.max_store_backlog:,} ticks; drain after the window "
        f"{_n(report.drain_seconds, 1)} s; WebSocket delivered/expected "
        f"{'—' if delivery is None else f'{delivery:.3f}'} (the hub conflates per channel "
        f"by design); clients disconnected {c.clients_disconnected}; emulator frames dropped "
        f"{c.emulator_frames_dropped}; ticks parked in ingest's spill file {c.spilled:,}"
    )
    latency = Table(title="Latency from feed frame receive (ts_recv)")
    for name in ("to", "samples", "p50 ms", "p99 ms", "p99.9 ms", "max ms"):
        latency.add_column(name, justify="left" if name == "to" else "right")
    for stage, lat in (("WebSocket client receipt", report.latency),
                       ("firehose entry in Redis (sampled)", report.redis_latency)):  # fmt: skip
        latency.add_row(stage, _n(lat.samples), _n(lat.p50_ms, 1), _n(lat.p99_ms, 1),
                        _n(lat.p999_ms, 1), _n(lat.max_ms, 1))  # fmt: skip
    console.print(latency)
    roles = Table(title="Cost per role (CPU over the window; 1.00 = one core)")
    columns = ("role", "processes", "CPU cores", "CPU s", "waiting for a CPU s",
               "peak RSS MiB", "RSS first 1/5 MiB", "RSS last 1/5 MiB")  # fmt: skip
    for name in columns:
        roles.add_column(name, justify="left" if name == "role" else "right")
    for name, usage in report.roles.items():
        roles.add_row(name, _n(usage["processes"]), _n(usage["cores"], 2),
                      _n(usage["cpu_seconds"], 1), _n(usage.get("wait_seconds"), 1),
                      _n(usage["peak_rss"] / 2**20, 0),
                      _n(usage.get("rss_start", 0) / 2**20, 0),
                      _n(usage.get("rss_end", 0) / 2**20, 0))  # fmt: skip
    console.print(roles)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)

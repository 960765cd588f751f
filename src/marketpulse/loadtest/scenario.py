"""What one load run asks for, and the pure decisions derived from it (instruments, channels).

Kept free of I/O so the choices (which instruments, which client watches what, which roles
share a process) are unit-tested and identical in the runner, the generator and the clients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

from marketpulse.feeds.simulator import default_universe

Feed = Literal["kite", "sim"]
FEEDS: tuple[Feed, ...] = ("kite", "sim")
ROLE_NAMES = ("ingest", "store", "api")
BASE_INSTRUMENTS = len(default_universe(date(2026, 1, 5)))
"""Instruments of the simulator's default universe; synthetic ``SIM`` stocks make up the rest."""
KITE_MAX_INSTRUMENTS = 3 * 3000
"""Kite's own limit (3 connections × 3000 tokens), which the feed enforces."""


class ScenarioError(ValueError):
    """A scenario that cannot run as asked; the message says which flag to change."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load run: offered rate over ``instruments``, fanned out to ``clients``."""

    feed: Feed = "kite"
    rate: float = 10_000.0
    instruments: int = 1000
    clients: int = 100
    channels_per_client: int = 50
    duration: float = 30.0
    warmup: float = 2.0
    roles: tuple[tuple[str, ...], ...] = (("ingest",), ("store",), ("api",))
    client_processes: int = 0
    """0 = one client process per 50 clients, at most 4."""
    deflate: bool = True
    """Clients offer permessage-deflate, as browsers and the ``websockets`` library do."""
    batch: bool = False
    """Clients connect with ``/ws?batch=true`` and get their queued data messages per frame."""
    ceilings: bool = True
    seed: int = 42
    slice_ms: float = 50.0
    """The Kite generator sends each connection one frame per slice: rate × slice ticks at once."""

    def validate(self) -> Scenario:
        if self.feed not in FEEDS:
            raise ScenarioError(f"--feed {self.feed!r}: choose kite or sim")
        if self.rate <= 0:
            raise ScenarioError("--rate must be positive")
        if not 1 <= self.slice_ms <= 1000:
            raise ScenarioError("--slice-ms must be between 1 and 1000")
        if self.instruments < 1:
            raise ScenarioError("--instruments must be at least 1")
        if self.feed == "kite" and self.instruments > KITE_MAX_INSTRUMENTS:
            raise ScenarioError(
                f"--instruments {self.instruments}: Kite streams at most {KITE_MAX_INSTRUMENTS} "
                "(3 connections × 3000 tokens); use --feed sim for more"
            )
        if self.clients < 0 or self.clients > 1000:
            raise ScenarioError("--clients must be between 0 and 1000")
        if self.channels_per_client < 1:
            raise ScenarioError("--channels-per-client must be at least 1")
        if self.duration <= 0 or self.warmup < 0:
            raise ScenarioError("--duration must be positive and --warmup not negative")
        seen = [role for group in self.roles for role in group]
        if sorted(seen) != sorted(ROLE_NAMES):
            raise ScenarioError(
                f"--roles {format_roles(self.roles)!r} must name ingest, store and api once each"
            )
        return self

    @property
    def extra_instruments(self) -> int:
        """Synthetic instruments the universe needs so that it has ``instruments`` of them."""
        return max(0, self.instruments - BASE_INSTRUMENTS)

    @property
    def worker_count(self) -> int:
        if self.clients == 0:
            return 0
        wanted = self.client_processes or min(4, (self.clients + 49) // 50)
        return max(1, min(wanted, self.clients))

    def label(self) -> str:
        return (
            f"{self.feed} {self.rate:,.0f}/s × {self.instruments:,} instruments → "
            f"{self.clients} clients × {min(self.channels_per_client, self.instruments)} channels"
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["roles"] = format_roles(self.roles)
        return out


def parse_roles(text: str) -> tuple[tuple[str, ...], ...]:
    """``ingest,store,api`` = three processes; ``+`` joins roles into one process
    (``ingest+store+api`` is ``marketpulse serve`` as one process)."""
    groups = []
    for part in text.split(","):
        roles = tuple(r.strip() for r in part.split("+") if r.strip())
        unknown = [r for r in roles if r not in ROLE_NAMES]
        if unknown:
            raise ScenarioError(f"--roles: unknown role(s) {', '.join(unknown)}")
        if roles:
            groups.append(roles)
    return tuple(groups)


def format_roles(groups: tuple[tuple[str, ...], ...]) -> str:
    return ",".join("+".join(group) for group in groups)


def instrument_symbols(scenario: Scenario, today: date) -> list[str]:
    """The canonical symbols streamed: the first ``instruments`` of the universe that both the
    Kite emulator and the simulator build for ``today`` with ``extra_instruments``."""
    universe = default_universe(today, scenario.extra_instruments)
    return [spec.symbol for spec in universe.specs[: scenario.instruments]]


def client_channels(symbols: list[str], clients: int, per_client: int) -> list[list[str]]:
    """Each client's channels: consecutive windows spread evenly over the instruments, so the
    clients together cover every instrument whenever ``clients × per_client`` allows."""
    count = len(symbols)
    take = min(per_client, count)
    out = []
    for index in range(clients):
        start = (index * count) // clients if clients else 0
        out.append([symbols[(start + j) % count] for j in range(take)])
    return out


def split_evenly(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt into ``parts`` lists of near-equal length, order kept within each."""
    return [items[i::parts] for i in range(parts)] if parts else []

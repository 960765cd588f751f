"""``marketpulse bench …``: the benchmark commands (``bench e2e`` = the end-to-end harness)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

bench_app = typer.Typer(help="Benchmarks of the running service.", no_args_is_help=True)

_console = Console(stderr=True, soft_wrap=True)
_ROLES_HELP = (
    "service processes: ',' separates processes, '+' joins roles in one "
    "(ingest+store+api = one process)"
)


@bench_app.command("e2e")
def e2e(
    rate: Annotated[float, typer.Option(help="offered ticks per second, in total")] = 10_000,
    instruments: Annotated[int, typer.Option(help="instruments the rate is spread over")] = 1000,
    clients: Annotated[int, typer.Option(help="WebSocket clients (0 = none)")] = 100,
    channels_per_client: Annotated[
        int, typer.Option(help="channels each client subscribes to")
    ] = 50,
    duration: Annotated[float, typer.Option(help="seconds of the measuring window")] = 30,
    warmup: Annotated[float, typer.Option(help="seconds of load before the window")] = 2,
    feed: Annotated[
        str, typer.Option(help="kite (the emulator in its own process) or sim (inside ingest)")
    ] = "kite",
    roles: Annotated[str, typer.Option(help=_ROLES_HELP)] = "ingest,store,api",
    client_processes: Annotated[
        int, typer.Option(help="client worker processes (0 = one per 50 clients, at most 4)")
    ] = 0,
    deflate: Annotated[
        bool, typer.Option(help="clients offer permessage-deflate (browsers do)")
    ] = True,
    batch: Annotated[
        bool, typer.Option(help="clients ask for batch frames (/ws?batch=true)")
    ] = False,
    ceilings: Annotated[
        bool, typer.Option(help="also measure the XADD / COPY / bare-websockets ceilings")
    ] = True,
    slice_ms: Annotated[
        float, typer.Option(help="the Kite generator sends one frame per connection per slice")
    ] = 50.0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the full result as JSON here")
    ] = None,
) -> None:
    """Drive the service at a fixed tick rate and measure throughput, loss, latency and cost.

    The service runs as separate processes per role on REDIS_URL/DATABASE_URL (else embedded
    servers), in a fresh database and private Redis key prefixes that are removed afterwards.
    """
    from marketpulse.loadtest.report import render
    from marketpulse.loadtest.runner import run_scenario
    from marketpulse.loadtest.scenario import Scenario, ScenarioError, parse_roles

    try:
        scenario = Scenario(
            feed=feed, rate=rate, instruments=instruments, clients=clients,  # type: ignore[arg-type]
            channels_per_client=channels_per_client, duration=duration, warmup=warmup,
            roles=parse_roles(roles), client_processes=client_processes, deflate=deflate,
            batch=batch, ceilings=ceilings, slice_ms=slice_ms,
        ).validate()  # fmt: skip
    except ScenarioError as exc:
        _console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    from marketpulse.loadtest.processes import ChildError

    try:
        report = run_scenario(
            scenario, progress=lambda m: _console.print(f"· {m}", highlight=False)
        )
    except ChildError as exc:
        _console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from exc
    render(report, Console(soft_wrap=True))
    if json_path is not None:
        report.write_json(json_path)
        _console.print(f"result written to {json_path}", highlight=False)

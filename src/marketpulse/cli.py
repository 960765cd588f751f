"""The ``marketpulse`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.console import Console

from marketpulse import event_loop
from marketpulse.accounts.cli import users_app
from marketpulse.config import Settings
from marketpulse.loadtest.cli import bench_app
from marketpulse.telemetry import configure_logging

app = typer.Typer(
    help="marketpulse: real-time market data — broker feeds to Redis, PostgreSQL and a "
    "REST/WebSocket API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
instruments_app = typer.Typer(help="The instrument master.", no_args_is_help=True)
app.add_typer(instruments_app, name="instruments")
login_app = typer.Typer(
    help="Log in to a broker and save its tokens under MARKETPULSE_HOME (mode 0600).",
    no_args_is_help=True,
)
app.add_typer(login_app, name="login")
app.add_typer(bench_app, name="bench")
app.add_typer(users_app, name="users")

console = Console(stderr=True, soft_wrap=True)

PortOption = Annotated[
    int | None, typer.Option("--port", "-p", help="API port (default: API_PORT, 8000)")
]
HostOption = Annotated[str | None, typer.Option("--host", help="API host (default: API_HOST)")]


def _settings(**overrides: Any) -> Settings:
    updates = {k: v for k, v in overrides.items() if v is not None}
    try:
        # Re-validate so overrides get the same checks as environment variables.
        settings = Settings.model_validate({**Settings().model_dump(), **updates})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"invalid settings: {problems}") from exc
    configure_logging(settings.log_level)
    return settings


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _run(settings: Settings, roles: frozenset[Any], *, banner: bool) -> None:
    from marketpulse.embedded import EmbeddedError, resolve_settings
    from marketpulse.service import Endpoints, serve

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            resolved = resolve_settings(settings, stack)
        except EmbeddedError as exc:
            raise _fail(str(exc)) from exc

        def ready(endpoints: Endpoints | None) -> None:
            elapsed = time.monotonic() - started
            if endpoints is None:
                console.print(
                    f"marketpulse {', '.join(sorted(roles))} running "
                    f"(ready in {elapsed:.1f}s). Ctrl-C to stop."
                )
                return
            if banner:
                console.print(
                    f"\n[bold green]marketpulse is up[/] (ready in {elapsed:.1f}s)\n"
                    f"  API        {endpoints.http}\n"
                    f"  Docs       {endpoints.http}/docs\n"
                    f"  Health     {endpoints.http}/health\n"
                    f"  Quotes     {endpoints.http}/api/quotes?symbols=RELIANCE.NSE,INFY.NSE\n"
                    f"  WebSocket  {endpoints.ws}  "
                    '(send {"message_type": "subscribe", "channel": "RELIANCE.NSE"})\n'
                    f"  Redis      {resolved.redis_url}  (for marketpulse.client and examples/)\n"
                    "Press Ctrl-C to stop.\n",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                console.print(
                    f"marketpulse serving on {endpoints.http} (ready in {elapsed:.1f}s)",
                    highlight=False,
                )

        from marketpulse.feeds.base import FeedError

        try:
            event_loop.run(serve(resolved, roles, on_ready=ready), resolved.event_loop)
        except (OSError, RuntimeError, FeedError, LookupError, ValueError) as exc:
            # Configuration problems (no SUBSCRIBE, unknown symbols, bad credentials) end here
            # with their own message rather than a traceback.
            raise _fail(str(exc)) from exc
    console.print("marketpulse stopped.")


@app.command()
def demo(
    port: PortOption = None,
    host: HostOption = None,
    rate: Annotated[float | None, typer.Option(help="simulated ticks per second in total")] = None,
    home: Annotated[
        Path | None, typer.Option(help="data directory (default: MARKETPULSE_HOME)")
    ] = None,
) -> None:
    """Run everything on this machine with simulated market data.

    Starts embedded Valkey and PostgreSQL unless REDIS_URL / DATABASE_URL are set, applies
    migrations, streams the simulator (market always open) through ingest, store and the API,
    and prints the URLs. Ctrl-C stops everything and flushes buffered ticks.
    """
    from marketpulse.service import ALL_ROLES

    settings = _settings(
        api_port=port, api_host=host, sim_ticks_per_second=rate, marketpulse_home=home,
        sim_always_open=True, feeds=["sim"],
    )  # fmt: skip
    if "auth_enabled" not in Settings().model_fields_set and settings.environment != "production":
        settings = settings.model_copy(update={"auth_enabled": False})
        logging.getLogger("marketpulse.demo").warning(
            "authentication is OFF in the demo (every caller is admin); set AUTH_ENABLED=true "
            "to require logins"
        )
    _run(settings, ALL_ROLES, banner=True)


@app.command()
def serve(
    roles: Annotated[
        str, typer.Option(help="comma-separated roles to run: ingest, store, api")
    ] = "ingest,store,api",
    feed: Annotated[
        list[str] | None, typer.Option("--feed", help="feed to run (repeatable; default FEEDS)")
    ] = None,
    port: PortOption = None,
    host: HostOption = None,
) -> None:
    """Run the service: by default all three roles in one process.

    Roles talk only through Redis and PostgreSQL, so they can also run as separate processes
    (set REDIS_URL and DATABASE_URL so they share the same servers).
    """
    from marketpulse.service import Role

    try:
        chosen = frozenset(Role(r.strip()) for r in roles.split(",") if r.strip())
    except ValueError as exc:
        raise _fail(f"{exc}; roles are ingest, store and api") from exc
    if not chosen:
        raise _fail("no roles given; choose from ingest, store, api")
    _run(_settings(api_port=port, api_host=host, feeds=feed or None), chosen, banner=False)


@app.command()
def ingest() -> None:
    """Run only the ingest role (feeds → Redis)."""
    from marketpulse.service import Role

    _run(_settings(), frozenset({Role.INGEST}), banner=False)


@app.command()
def store() -> None:
    """Run only the store role (Redis firehose → PostgreSQL)."""
    from marketpulse.service import Role

    _run(_settings(), frozenset({Role.STORE}), banner=False)


@app.command()
def api(port: PortOption = None, host: HostOption = None) -> None:
    """Run only the API role (REST + WebSocket)."""
    from marketpulse.service import Role

    _run(_settings(api_port=port, api_host=host), frozenset({Role.API}), banner=False)


def _database_url(settings: Settings, stack: contextlib.ExitStack) -> str:
    """``DATABASE_URL``, or an embedded PostgreSQL started on ``stack`` when it is unset."""
    from marketpulse.embedded import EmbeddedServices

    if settings.database_url is not None:
        return settings.database_url
    services = stack.enter_context(
        EmbeddedServices(
            settings.marketpulse_home, want_redis=False, want_postgres=True, log=console.print
        )
    )
    assert services.database_url is not None
    return services.database_url


def _with_database(action: Callable[[str], object], settings: Settings | None = None) -> object:
    """Run ``action(database_url)``; connection and lookup failures become clear CLI errors."""
    from marketpulse.embedded import EmbeddedError
    from marketpulse.feeds.base import FeedError
    from marketpulse.store.database import DatabaseError
    from marketpulse.store.instruments import UnknownInstrumentError

    settings = settings or _settings()
    with contextlib.ExitStack() as stack:
        try:
            return action(_database_url(settings, stack))
        except (EmbeddedError, DatabaseError, UnknownInstrumentError, FeedError, OSError) as exc:
            raise _fail(str(exc)) from exc


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Apply migrations (the service also does this at start)."""
    from marketpulse.config import redact_url
    from marketpulse.store.database import upgrade_sync

    def migrate(url: str) -> None:
        upgrade_sync(url, revision)
        console.print(f"database {redact_url(url)} migrated to {revision}", highlight=False)

    _with_database(migrate)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, e.g. 0005")],
) -> None:
    """Undo migrations down to ``revision`` (e.g. 0005, to redo 0006 after installing
    TimescaleDB)."""
    from marketpulse.config import redact_url
    from marketpulse.store.database import downgrade_sync

    def migrate(url: str) -> None:
        downgrade_sync(url, revision)
        console.print(f"database {redact_url(url)} migrated down to {revision}", highlight=False)

    _with_database(migrate)


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision the database is at."""
    from marketpulse.store.database import current_revision_sync

    _with_database(lambda url: console.print(f"revision: {current_revision_sync(url)}"))


@db_app.command("seed")
def db_seed() -> None:
    """Load exchanges, NIFTY sectors and the demo universe (idempotent; migrates first)."""
    from rich.progress import Progress as RichProgress
    from rich.table import Table

    from marketpulse.seed import seed_reference_data
    from marketpulse.store.database import create_pool, upgrade

    settings = _settings()

    def action(url: str) -> None:
        async def run() -> None:
            await upgrade(url)
            pool = await create_pool(url, max_size=2)
            try:
                with RichProgress(console=console, transient=True) as bar:
                    task = bar.add_task("seeding", total=4)
                    report = await seed_reference_data(
                        pool, settings,
                        lambda step, done, total: bar.update(task, completed=done, total=total,
                                                             description=f"seeded {step}"),
                    )  # fmt: skip
            finally:
                await pool.close()
            table = Table("step", "inserted", "updated", "unchanged", title="seed")
            for step, counts in report.steps.items():
                table.add_row(step, str(counts.inserted), str(counts.updated),
                              str(counts.unchanged))  # fmt: skip
            console.print(table)
            for note in report.notes:
                console.print(f"note: {note}", highlight=False)
            console.print("changed" if report.changed else "nothing to change", highlight=False)

        asyncio.run(run())

    _with_database(action, settings)


@app.command("record")
def record_command(
    feed: Annotated[str, typer.Option(help="feed to record: sim, kite, angelone, …")],
    tokens: Annotated[
        str | None, typer.Option(help="comma-separated broker tokens, e.g. 408065,884737")
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="comma-separated symbols, resolved through the instrument master"),
    ] = None,
    mode: Annotated[str, typer.Option(help="ltp, quote or full")] = "full",
    duration: Annotated[float, typer.Option(help="seconds to record")] = 30.0,
    out: Annotated[Path, typer.Option(help="JSON-lines file of ticks")] = Path("ticks.jsonl"),
    raw: Annotated[
        Path | None, typer.Option(help="also keep the raw frames (for `marketpulse replay`)")
    ] = None,
) -> None:
    """Record a feed's ticks, one canonical tick JSON per line.

    Uses the configured credentials and endpoints (point a feed at an emulator with its *_WS_URL
    setting). Tokens are used as given; --symbols needs the instrument master (DATABASE_URL or
    the embedded PostgreSQL) to find each symbol's token.
    """
    from marketpulse.feeds.base import FeedError
    from marketpulse.model import Mode
    from marketpulse.recorder import record
    from marketpulse.subscriptions import TrackedSymbol

    settings = _settings()
    try:
        chosen_mode = Mode(mode)
    except ValueError as exc:
        raise _fail(f"unknown mode {mode!r}; use ltp, quote or full") from exc
    if bool(tokens) == bool(symbols):
        raise _fail("give exactly one of --tokens or --symbols")
    if tokens:
        # No instrument master involved: ticks keep the symbol their decoder gave (or none).
        tracked = [
            TrackedSymbol(symbol="", source=feed, token=t, exchange="", mode=mode)
            for t in (t.strip() for t in tokens.split(","))
            if t
        ]
    else:
        assert symbols is not None
        tracked = _resolve_symbols(settings, feed, symbols.split(","), mode)

    def show(count: int) -> None:
        console.print(f"\r{count:,} ticks", end="", highlight=False)

    try:
        summary = asyncio.run(
            record(settings, feed, tracked, chosen_mode, duration, out, raw, on_progress=show)
        )
    except (FeedError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"\nrecorded {summary.ticks:,} ticks in {summary.seconds:.1f}s to {out}"
        + (f", {summary.frames:,} raw frames to {raw}" if raw else "")
        + (f" ({summary.reconnects} reconnects)" if summary.reconnects else ""),
        highlight=False,
    )


def _resolve_symbols(settings: Settings, feed: str, items: list[str], mode: str) -> list[Any]:
    from marketpulse.store.database import create_pool
    from marketpulse.store.instruments import resolve_instruments

    async def lookup(url: str) -> list[Any]:
        pool = await create_pool(url, max_size=1)
        try:
            return await resolve_instruments(pool, feed, items, mode)
        finally:
            await pool.close()

    return cast(list[Any], _with_database(lambda url: asyncio.run(lookup(url)), settings))


@app.command("replay")
def replay_command(
    capture: Annotated[Path, typer.Argument(help="raw capture written by record --raw")],
    feed: Annotated[str, typer.Option(help="the feed the capture came from")],
    out: Annotated[
        Path | None, typer.Option(help="write ticks here instead of standard output")
    ] = None,
) -> None:
    """Decode a raw capture again: one tick JSON per line, a summary on standard error."""
    import sys

    from marketpulse.feeds.capture import CaptureError, read_frames
    from marketpulse.feeds.registry import UnknownFeedError, feed_spec
    from marketpulse.model import encode_tick

    try:
        spec = feed_spec(feed)
    except UnknownFeedError as exc:
        raise _fail(str(exc)) from exc
    if spec.decode is None:
        raise _fail(f"feed {feed!r} has no raw frame decoder")
    frames = ticks = 0
    target = out.open("wb") if out is not None else sys.stdout.buffer
    try:
        for ts_recv, frame in read_frames(capture):
            decoded = spec.decode(frame, ts_recv)
            frames += 1
            ticks += len(decoded)
            for tick in decoded:
                target.write(encode_tick(tick) + b"\n")
    except (CaptureError, OSError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        if out is not None:
            target.close()
        else:
            target.flush()
    console.print(f"{frames:,} frames → {ticks:,} ticks", highlight=False)


@app.command("emulate")
def emulate_command(
    broker: Annotated[str, typer.Argument(help="kite, angelone, …")],
    port: Annotated[int, typer.Option("--port", "-p", help="port to listen on")] = 8765,
    host: Annotated[str, typer.Option(help="address to listen on (loopback)")] = "127.0.0.1",
    rate: Annotated[float, typer.Option(help="ticks per second, in total")] = 100.0,
    seed: Annotated[int, typer.Option(help="simulator seed")] = 42,
    drop_every: Annotated[
        float | None, typer.Option(help="close every WebSocket every N seconds")
    ] = None,
    silence_after: Annotated[
        float | None, typer.Option(help="connections go silent N seconds after opening")
    ] = None,
    expire_token_after: Annotated[
        float | None, typer.Option(help="the access token stops working after N seconds")
    ] = None,
) -> None:
    """Run a broker emulator: the broker's WebSocket and REST API, fed by the simulator.

    Point a feed at it with the broker's *_WS_URL / *_API_URL settings; the official SDKs can
    connect to it too. The broker's docs page lists the test credentials it accepts.
    """
    import importlib

    from marketpulse.emulators import EMULATORS
    from marketpulse.emulators.options import EmulatorOptions, Faults
    from marketpulse.httpserver import serving

    module_name = EMULATORS.get(broker)
    if module_name is None:
        raise _fail(f"no emulator for {broker!r}; available: {', '.join(sorted(EMULATORS))}")
    _settings()  # logging
    options = EmulatorOptions(
        seed=seed, ticks_per_second=rate,
        faults=Faults(drop_every, silence_after, expire_token_after),
    )  # fmt: skip
    app_ = importlib.import_module(module_name).build_app(options)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serving(app_, host, port) as bound:
            console.print(
                f"{broker} emulator on http://{host}:{bound} (WebSocket ws://{host}:{bound}) "
                "— Ctrl-C to stop", highlight=False,
            )  # fmt: skip
            await stop.wait()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise _fail(str(exc)) from exc


def _parse_moment(text: str, option: str) -> datetime:
    """``2026-03-02`` (midnight IST) or an ISO time (no offset = IST): Indian users think in
    IST, and a bare date means the whole trading day."""
    from datetime import timedelta, timezone

    ist = timezone(timedelta(hours=5, minutes=30), "IST")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _fail(f"{option} {text!r} is not a date (2026-03-02) or ISO time") from None
    return moment.replace(tzinfo=ist) if moment.tzinfo is None else moment


@app.command("backfill")
def backfill_command(
    symbols: Annotated[str, typer.Option(help="comma-separated symbols, e.g. RELIANCE.NSE")],
    provider: Annotated[str, typer.Option(help="feed whose REST history to use, e.g. kite")],
    start: Annotated[str, typer.Option("--from", help="range start: date or ISO time (IST)")],
    end: Annotated[str, typer.Option("--to", help="range end, exclusive: date or ISO time")],
    interval: Annotated[str, typer.Option(help="1m, 5m, 15m, 1h or 1d")] = "1m",
) -> None:
    """Fetch candles from a provider's REST history into the database (status ``reconciled``),
    with a progress bar; a 1m backfill also rebuilds the higher intervals it covers."""
    from rich.progress import Progress as RichProgress

    from marketpulse.store.backfill import (
        BackfillError,
        BackfillPlan,
        BackfillState,
        create_job,
        resolve_targets,
        run_backfill,
    )
    from marketpulse.store.database import create_pool, upgrade

    names = tuple(dict.fromkeys(s.strip() for s in symbols.split(",") if s.strip()))
    plan = BackfillPlan(provider, names, interval.strip(), _parse_moment(start, "--from"),
                        _parse_moment(end, "--to"))  # fmt: skip
    settings = _settings()
    try:
        plan.validate(settings)
    except BackfillError as exc:
        raise _fail(str(exc)) from exc

    def action(url: str) -> None:
        async def run() -> BackfillState:
            await upgrade(url)
            pool = await create_pool(url, max_size=2)
            try:
                targets = await resolve_targets(pool, settings, plan.provider, plan.symbols)
                state = await create_job(pool, plan)
                with RichProgress(console=console, transient=True) as bar:
                    task = bar.add_task(f"backfilling {len(targets)} symbols", total=1.0)

                    def show(progress: BackfillState) -> None:
                        bar.update(task, completed=progress.progress,
                                   description=f"{progress.candles} candles")  # fmt: skip

                    return await run_backfill(pool, settings, state, show, targets)
            finally:
                await pool.close()

        state = asyncio.run(run())
        console.print(
            f"backfill {state.id}: {state.status}, {state.candles} candles "
            f"({state.requests} requests)",
            highlight=False,
        )
        for error in state.errors:
            console.print(f"  error: {error}", highlight=False)
        if state.status == "failed":
            raise typer.Exit(1)

    _with_database(action, settings)


@instruments_app.command("sync")
def instruments_sync(
    provider: Annotated[str, typer.Option(help="provider whose instrument master to load")],
) -> None:
    """Download a provider's instrument master into the database and report what changed
    (added / changed / removed / colliding rows)."""
    from rich.progress import Progress as RichProgress

    from marketpulse.feeds.registry import UnknownFeedError, feed_spec
    from marketpulse.store.database import create_pool, upgrade
    from marketpulse.store.instruments import sync_instruments

    try:
        spec = feed_spec(provider)
    except UnknownFeedError as exc:
        raise _fail(str(exc)) from exc
    fetch = spec.instruments
    if fetch is None:
        raise _fail(f"{provider!r} has no instrument master")
    settings = _settings()

    def action(url: str) -> None:
        async def run() -> None:
            with RichProgress(console=console, transient=True) as bar:
                download = bar.add_task(f"downloading {provider} instruments", total=None)

                def downloaded(done: int, total: int) -> None:
                    bar.update(download, completed=done, total=total or None)

                records = await fetch(settings, downloaded)
                bar.update(download, completed=1, total=1)
                await upgrade(url)
                pool = await create_pool(url, max_size=2)
                try:
                    writing = bar.add_task("writing", total=len(records))
                    report = await sync_instruments(
                        pool, provider, records,
                        lambda done, total: bar.update(writing, completed=done, total=total),
                    )  # fmt: skip
                finally:
                    await pool.close()
            console.print(report.summary(), highlight=False)
            for problem in report.collisions[:20]:
                console.print(f"  collision: {problem}", highlight=False)
            if len(report.collisions) > 20:
                console.print(f"  … and {len(report.collisions) - 20} more", highlight=False)

        asyncio.run(run())

    _with_database(action, settings)


def _register_logins() -> None:
    """Each broker's ``auth.login_cli`` becomes ``marketpulse login <broker>``."""
    import importlib

    from marketpulse.feeds.registry import FEEDS

    for broker in FEEDS:
        try:
            module = importlib.import_module(f"marketpulse.feeds.{broker}.auth")
        except ModuleNotFoundError:
            continue
        login_cli = getattr(module, "login_cli", None)
        if login_cli is not None:
            login_app.command(broker)(login_cli)


_register_logins()


if __name__ == "__main__":
    app()

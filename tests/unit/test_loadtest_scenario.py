"""The load harness's pure decisions: roles, instruments, channels, validation, percentiles."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.loadtest.report import Counts, RunReport, percentiles
from marketpulse.loadtest.scenario import (
    BASE_INSTRUMENTS,
    Scenario,
    ScenarioError,
    client_channels,
    format_roles,
    instrument_symbols,
    parse_roles,
    split_evenly,
)

TODAY = date(2026, 3, 2)


def test_roles_split_on_commas_and_join_on_plus() -> None:
    assert parse_roles("ingest,store,api") == (("ingest",), ("store",), ("api",))
    assert parse_roles("ingest+store , api") == (("ingest", "store"), ("api",))
    assert format_roles(parse_roles("ingest+store+api")) == "ingest+store+api"


def test_an_unknown_role_is_named() -> None:
    with pytest.raises(ScenarioError, match="cooking"):
        parse_roles("ingest,cooking")


@pytest.mark.parametrize("roles", ["ingest,store", "ingest,store,api,api", "ingest+api"])
def test_every_role_must_run_exactly_once(roles: str) -> None:
    with pytest.raises(ScenarioError, match="ingest, store and api once each"):
        Scenario(roles=parse_roles(roles)).validate()


def test_kite_beyond_its_connection_limits_points_to_the_simulator() -> None:
    with pytest.raises(ScenarioError, match="use --feed sim"):
        Scenario(feed="kite", instruments=10_000).validate()
    assert Scenario(feed="sim", instruments=10_000).validate().instruments == 10_000


@pytest.mark.parametrize("count", [1, 50, BASE_INSTRUMENTS, 1000, 10_000])
def test_the_universe_holds_exactly_the_instruments_asked_for(count: int) -> None:
    scenario = Scenario(feed="sim", instruments=count)
    symbols = instrument_symbols(scenario, TODAY)
    assert len(symbols) == len(set(symbols)) == count
    assert scenario.extra_instruments == max(0, count - BASE_INSTRUMENTS)


def test_clients_together_cover_every_instrument_when_they_can() -> None:
    symbols = [f"S{i}.NSE" for i in range(1000)]
    channels = client_channels(symbols, clients=100, per_client=50)
    assert len(channels) == 100
    assert all(len(c) == len(set(c)) == 50 for c in channels)
    assert {s for c in channels for s in c} == set(symbols)


def test_a_client_never_asks_for_more_channels_than_instruments() -> None:
    channels = client_channels(["A.NSE", "B.NSE"], clients=3, per_client=50)
    assert [sorted(c) for c in channels] == [["A.NSE", "B.NSE"]] * 3


def test_clients_are_dealt_evenly_to_worker_processes() -> None:
    parts = split_evenly(list(range(7)), 3)
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert Scenario(clients=100).worker_count == 2
    assert Scenario(clients=3).worker_count == 1
    assert Scenario(clients=0).worker_count == 0


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    latencies = [i * 1_000_000 for i in range(1, 1001)]  # 1 … 1000 ms
    result = percentiles(latencies)
    assert (result.samples, result.p50_ms, result.p99_ms, result.p999_ms, result.max_ms) == (
        1000, 500.0, 990.0, 999.0, 1000.0
    )  # fmt: skip
    assert percentiles([]).samples == 0


def test_a_report_without_stored_ticks_or_latency_is_incomplete() -> None:
    report = RunReport({"clients": 3}, {}, window_seconds=5.0)
    report.roles = {name: {} for name in ("ingest", "store+api")}
    report.counts = Counts(published=10, stored=10, delivered=5)
    assert not report.complete()  # no latency samples
    report.latency = percentiles([1_000_000])
    assert report.complete()
    report.counts.stored = 9
    assert report.storage_loss == 1
    assert report.as_dict()["storage_loss"] == 1


def test_the_cli_rejects_a_bad_scenario_before_starting_anything() -> None:
    result = CliRunner().invoke(app, ["bench", "e2e", "--feed", "kite", "--instruments", "20000"])
    assert result.exit_code == 2
    assert "use --feed sim" in result.output


def test_bench_e2e_help_lists_the_scenario_flags() -> None:
    result = CliRunner().invoke(app, ["bench", "e2e", "--help"])
    assert result.exit_code == 0
    for flag in ("--rate", "--instruments", "--clients", "--duration", "--feed", "--roles",
                 "--json"):  # fmt: skip
        assert flag in result.output


@pytest.mark.parametrize("slice_ms", [0.5, 0, 1001])
def test_a_generator_slice_outside_1_to_1000_ms_is_refused(slice_ms: float) -> None:
    with pytest.raises(ScenarioError, match="--slice-ms"):
        Scenario(slice_ms=slice_ms).validate()

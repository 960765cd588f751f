"""``marketpulse bench e2e`` smoke runs: every tick the generator sent is stored, and the report
is complete. Small and short on purpose — never a speed threshold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.loadtest.runner import run_scenario
from marketpulse.loadtest.scenario import Scenario, parse_roles

pytestmark = pytest.mark.e2e


def test_bench_e2e_with_the_kite_generator_stores_every_tick_and_writes_a_complete_report(
    server_urls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_url, database_url = server_urls
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    out = tmp_path / "e2e.json"
    result = CliRunner().invoke(app, [
        "bench", "e2e", "--feed", "kite", "--rate", "500", "--instruments", "50",
        "--clients", "3", "--channels-per-client", "20", "--duration", "5", "--warmup", "1",
        "--json", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert report["complete"], report
    assert counts["published"] > 0
    assert counts["published"] == counts["received"] == counts["into_redis"] == counts["stored"]
    assert report["storage_loss"] == 0
    assert 0 < counts["delivered"] <= counts["expected_deliveries"]
    assert report["latency"]["samples"] == counts["delivered"]
    # The firehose probe saw ticks arrive in Redis, no later than they reached the clients.
    into_redis = report["redis_latency"]
    assert into_redis["samples"] > 0
    assert into_redis["p50_ms"] <= report["latency"]["p50_ms"]
    assert {"generator", "ingest", "store", "api", "clients"} <= set(report["roles"])
    for role in ("ingest", "store", "api"):  # sampled in the window's first and last fifths
        usage = report["roles"][role]
        assert 0 < usage["rss_start"] <= usage["peak_rss"], usage
        assert 0 < usage["rss_end"] <= usage["peak_rss"], usage
        if sys.platform.startswith("linux"):  # run-queue wait from /proc/*/task/*/schedstat
            assert usage["wait_seconds"] is not None and usage["wait_seconds"] >= 0, usage
    assert report["ceilings"]["copy_rows_per_s"] > 0
    assert report["ceilings"]["broadcast_messages_per_s"] > 0
    for heading in ("Throughput and loss", "Latency", "firehose entry in Redis", "Cost per role"):
        assert heading in result.output


def test_bench_e2e_with_the_simulator_in_one_service_process_and_batch_clients_loses_nothing(
    server_urls: tuple[str, str],
) -> None:
    redis_url, database_url = server_urls
    scenario = Scenario(feed="sim", rate=500, instruments=60, clients=2, channels_per_client=10,
                        duration=3, warmup=1, roles=parse_roles("ingest+store+api"),
                        ceilings=False, batch=True)  # fmt: skip
    report = run_scenario(scenario, redis_url=redis_url, database_url=database_url)
    assert report.complete(), report.as_dict()
    assert report.storage_loss == 0
    assert report.counts.stored == report.counts.published > 0
    assert set(report.roles) >= {"ingest+store+api", "clients"}
    # Batch frames are counted per data message they carry, each with its own latency sample.
    result = report.as_dict()
    assert result["latency"]["samples"] == result["counts"]["delivered"] > 0


def test_ticks_ingest_parks_in_its_spill_file_are_replayed_and_stored_before_the_run_ends(
    server_urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A firehose bound the store's one-second batches always exceed: ingest keeps spilling
    # new entries to its file and replaying them, up to the end of the load.
    monkeypatch.setenv("FIREHOSE_MAXLEN", "1000")
    monkeypatch.setenv("FIREHOSE_SPILL_HIGH_RATIO", "0.2")
    monkeypatch.setenv("FIREHOSE_SPILL_LOW_RATIO", "0.1")
    redis_url, database_url = server_urls
    scenario = Scenario(feed="kite", rate=2000, instruments=50, clients=0, duration=4,
                        warmup=1, ceilings=False)  # fmt: skip
    report = run_scenario(scenario, redis_url=redis_url, database_url=database_url)
    assert report.counts.spilled > 0, report.as_dict()
    assert report.storage_loss == 0, report.as_dict()
    assert report.counts.stored == report.counts.published > 0

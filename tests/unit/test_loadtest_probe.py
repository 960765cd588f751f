"""The firehose probe's latency of one entry: Redis arrival (entry id) minus ``ts_recv``."""

from __future__ import annotations

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD
from marketpulse.loadtest.probe import ingest_latency_ns
from marketpulse.model import Tick, encode_tick


def test_latency_is_the_entry_ids_milliseconds_minus_the_ticks_receive_stamp() -> None:
    tick = encode_tick(Tick("kite", "738561", "NSE", "full", 1.5, ts_recv=1795347569186807625))
    entry = (b"1795347569191-3", {KEY_FIELD: b"RELIANCE.NSE", TICK_FIELD: tick})
    assert ingest_latency_ns(entry) == 1795347569191_000_000 - 1795347569186807625


def test_an_entry_without_a_receive_stamp_gives_no_sample() -> None:
    no_stamp = encode_tick(Tick("kite", "738561", "NSE", "full", 1.5))
    assert ingest_latency_ns((b"1-0", {TICK_FIELD: no_stamp})) is None
    assert ingest_latency_ns((b"1-0", {TICK_FIELD: b"not json"})) is None
    assert ingest_latency_ns((b"1-0", {KEY_FIELD: b"X"})) is None

"""The firehose probe's latency of one entry: Redis arrival (entry id) minus ``ts_recv``."""

from __future__ import annotations

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD
from marketpulse.loadtest.probe import ingest_latency_ns


def test_latency_is_the_entry_ids_milliseconds_minus_the_ticks_receive_stamp() -> None:
    tick = b'{"source":"kite","ltp":1.5,"ts_recv":1795347569186807625,"mode":"full"}'
    entry = (b"1795347569191-3", {KEY_FIELD: b"RELIANCE.NSE", TICK_FIELD: tick})
    assert ingest_latency_ns(entry) == 1795347569191_000_000 - 1795347569186807625


def test_an_entry_without_a_receive_stamp_gives_no_sample() -> None:
    assert ingest_latency_ns((b"1-0", {TICK_FIELD: b'{"ts_recv":null}'})) is None
    assert ingest_latency_ns((b"1-0", {KEY_FIELD: b"X"})) is None

"""Fyers HSM decoding: ``feeds.fyers.wire.decode_frame`` against the official SDK's parser.

The same bytes go through both: a data message of 50 scrip snapshots (``sf``), then messages of
50 update records each, alternating between two value sets so every record really changes
something (an unchanged update produces no output in either decoder). The reference is
``FyersDataSocket.__response_msg`` of ``fyers-apiv3`` 3.2.0 (installed as a test-only dependency,
never imported by ``src/``), with a no-op ``on_message``; ours builds full ``Tick`` objects from
the merged per-topic state. Both are timed by the same :func:`bench.measure`; ``ns/op`` is per
record. Without the SDK only our numbers are reported.

The "floor" case times nothing but building the output ``Tick`` the way the decoder does
(positionally, from a topic's already-merged, already-scaled cached arguments): no parsing, no
merge. No pure-Python decoder producing the canonical ``Tick`` can beat it, so if it took more
than a tenth of the SDK's time per record, 10x would be out of reach.

    python bench/bench_fyers_decode.py      # or: python -m bench fyers_decode
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.fyers import wire
from marketpulse.model import Tick

RECORDS = 50
TS_RECV = 1_765_791_000_125_456_789


def _values(rng: random.Random, base: int) -> list[int]:
    now = 1_765_791_000
    ltp = base + rng.randrange(-200, 200)
    return [ltp, rng.randrange(10**5, 10**7), now, now, rng.randrange(1, 5000),
            rng.randrange(1, 5000), ltp - 5, ltp + 5, rng.randrange(1, 500),
            rng.randrange(10**5, 10**6), rng.randrange(10**5, 10**6), base, 0, base - 900,
            base + 900, base * 2, base // 2, base - 5000, base + 5000, base - 300,
            base - 150]  # fmt: skip


def frames() -> tuple[bytes, list[bytes], dict[str, str]]:
    """The snapshot message, two alternating update messages, and topic → symbol labels."""
    rng = random.Random(7)
    topics = [f"sf|nse_cm|{1000 + n}" for n in range(RECORDS)]
    bases = [rng.randrange(10_000, 500_000) for _ in topics]
    snapshot = wire.encode_data(1, [
        wire.Snapshot(n + 1, topic, tuple(_values(rng, bases[n])), 1, 2, "nse_cm",
                      topic.rsplit("|", 1)[1], f"SYM{n}-EQ")
        for n, topic in enumerate(topics)
    ])  # fmt: skip
    updates = []
    for number in (2, 3):
        records: list[wire.Record] = []
        for n in range(RECORDS):
            values = [wire.NO_VALUE] * 21
            values[wire.LTP] = bases[n] + number  # differs between the two messages
            values[wire.VOLUME] = 10**7 + number
            values[wire.LTQ] = number
            values[wire.FEED_TIME] = 1_765_791_000 + number
            records.append(wire.Update(n + 1, tuple(values)))
        updates.append(wire.encode_data(number, records))
    return snapshot, updates, {t: f"NSE:SYM{n}-EQ" for n, t in enumerate(topics)}


def _ours(snapshot: bytes, updates: list[bytes], labels: dict[str, str]) -> float:
    state = wire.HsmState(labels=dict(labels), modes=dict.fromkeys(labels.values(), "quote"))
    decode = wire.decode_frame
    decode(snapshot, TS_RECV, state)
    first, second = updates

    def run() -> None:
        decode(first, TS_RECV, state)
        decode(second, TS_RECV, state)

    assert len(decode(first, TS_RECV, state).ticks) == RECORDS
    return measure(run, ops_per_call=2 * RECORDS)


def _floor(snapshot: bytes, updates: list[bytes], labels: dict[str, str]) -> float:
    """Only the Tick construction of the decoder's hot path, from the cached arguments."""
    state = wire.HsmState(labels=dict(labels), modes=dict.fromkeys(labels.values(), "quote"))
    for frame in (snapshot, *updates):
        wire.decode_frame(frame, TS_RECV, state)
    cached = [topic.args for topic in state.topics.values()]
    assert len(cached) == RECORDS

    def run() -> None:
        for args in cached:
            args[3] = "quote"  # what the decoder sets per tick: mode and receive time
            args[26] = TS_RECV
            Tick(*args)

    return measure(run, ops_per_call=RECORDS)


def _sdk(snapshot: bytes, updates: list[bytes], labels: dict[str, str]) -> float | None:
    try:
        from fyers_apiv3.FyersWebsocket import data_ws
    except ImportError:
        return None
    out: list[Any] = []
    data_ws.FyersDataSocket._instance = None
    sock = data_ws.FyersDataSocket(
        access_token="x", log_path=tempfile.mkdtemp(), litemode=False, reconnect=False,
        on_message=out.append, on_error=out.append,
    )  # fmt: skip
    sock.symbol_token = dict(labels)
    parse = sock._FyersDataSocket__response_msg
    parse(bytearray(snapshot))
    first, second = bytearray(updates[0]), bytearray(updates[1])
    out.clear()
    parse(first)
    assert len(out) == RECORDS, out[:2]

    def run() -> None:
        parse(first)
        parse(second)
        out.clear()

    return measure(run, ops_per_call=2 * RECORDS)


def run() -> list[Result]:
    snapshot, updates, labels = frames()
    name = f"fyers decode_frame: update records ({RECORDS}/message) -> Tick"
    ours_ns = _ours(snapshot, updates, labels)
    sdk_ns = _sdk(snapshot, updates, labels)
    results: list[Result] = []
    reference = None
    if sdk_ns is not None:
        reference = result("fyers-apiv3 3.2.0 __response_msg (same bytes)", sdk_ns)
        results.append(reference)
    results.append(result(name, ours_ns, reference))
    floor = "floor: Tick(*cached scaled args) only, no parse/merge (per record)"
    results.append(result(floor, _floor(snapshot, updates, labels), reference))
    message = wire.decode_server_frame(updates[0])
    assert isinstance(message, wire.DataMessage)
    records = message.records
    encode_ns = measure(lambda: wire.encode_data(2, records), ops_per_call=RECORDS)
    results.append(result("fyers encode_data: update records (emulator side)", encode_ns))
    return results


if __name__ == "__main__":
    for row in run():
        ratio = f"  {row['ratio']:.1f}x {row['reference']}" if "ratio" in row else ""
        print(
            f"{row['name']:<66} {row['ns_per_op']:>9,.0f} ns  {row['ops_per_s']:>12,.0f}/s{ratio}"
        )

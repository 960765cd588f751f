"""Dhan binary decoding: ``feeds.dhan.wire.decode_message`` against the official SDK's parser.

The same bytes go through both: one packet per WebSocket message, as Dhan sends them (full,
quote, ticker). The reference is ``MarketFeed.process_data`` of ``dhanhq`` 2.3.0 (test/benchmark
only, never imported by ``src/``), run in a subprocess of this interpreter and timed by the same
:func:`bench.measure` (CPU time, best of 9). ``ns/op`` is per packet.

    python bench/bench_dhan_decode.py      # or: python -m bench dhan_decode
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.dhan.wire import decode_message, encode_tick
from marketpulse.model import DepthLevel, Tick

ROOT = Path(__file__).resolve().parent.parent
TS_RECV = 1_765_791_000_125_456_789

_SDK_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench import measure
from dhanhq import DhanContext, MarketFeed
parse = MarketFeed(DhanContext("1000000001", "x"), [], version="v2").process_data
out = {}
for name, hexes in json.load(open(sys.argv[2])).items():
    frames = [bytes.fromhex(h) for h in hexes]
    packets = sum(parse(f) is not None for f in frames)
    out[name] = [measure(lambda: [parse(f) for f in frames], ops_per_call=len(frames)), packets]
print(json.dumps(out))
"""


def _tick(rng: random.Random, mode: str) -> Tick:
    paise = rng.randrange(500, 500_000) * 5
    ltp = paise / 100
    key = (
        f"NSE_FNO|{rng.randrange(1000, 90000)}"
        if mode == "full"
        else f"NSE_EQ|{rng.randrange(1, 30000)}"
    )
    ts = 1_765_791_000_000
    if mode == "ltp":
        return Tick(source="dhan", token=key, exchange="NSE", mode="ltp", ltp=ltp, ts_last_trade=ts)
    return Tick(
        source="dhan", token=key, exchange="NFO" if mode == "full" else "NSE", mode=mode, ltp=ltp,
        ltq=rng.randrange(1, 20) * 25, atp=(paise - 35) / 100, volume=rng.randrange(10**4, 10**8),
        total_buy_qty=rng.randrange(1000, 2_000_000), total_sell_qty=rng.randrange(1000, 2_000_000),
        open=(paise - 100) / 100, high=(paise + 250) / 100, low=(paise - 400) / 100,
        oi=rng.randrange(10**4, 10**7) if mode == "full" else None, oi_day_high=10**7,
        oi_day_low=5000, ts_last_trade=ts,
        bids=[DepthLevel((paise - 5 * i) / 100, 25 * (i + 3), i + 1) for i in range(1, 6)],
        asks=[DepthLevel((paise + 5 * i) / 100, 25 * (i + 2), i + 2) for i in range(1, 6)],
    )  # fmt: skip


def cases() -> dict[str, list[bytes]]:
    rng = random.Random(20250115)
    return {f"{mode} x1/msg": [encode_tick(_tick(rng, mode)) for _ in range(500)]
            for mode in ("full", "quote", "ltp")}  # fmt: skip


def measure_sdk(all_cases: dict[str, list[bytes]]) -> dict[str, tuple[float, int]] | None:
    python = os.environ.get("DHAN_SDK_PYTHON") or (
        sys.executable if importlib.util.find_spec("dhanhq") is not None else None
    )
    if python is None:
        print("bench_dhan_decode: dhanhq not installed; reporting ours only", file=sys.stderr)
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({name: [f.hex() for f in frames] for name, frames in all_cases.items()}, handle)
    try:
        out = subprocess.run([python, "-c", _SDK_SCRIPT, str(ROOT), handle.name],
                             capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    finally:
        os.unlink(handle.name)
    return {name: (ns, packets) for name, (ns, packets) in json.loads(out.stdout).items()}


def run() -> list[Result]:
    all_cases = cases()
    sdk = measure_sdk(all_cases)
    rows: list[Result] = []
    for name, frames in all_cases.items():
        decoded = [decode_message(f, TS_RECV) for f in frames]
        assert all(len(d.ticks) == 1 and not d.errors for d in decoded)
        reference = None
        if sdk is not None:
            sdk_ns, packets = sdk[name]
            assert packets == len(frames), f"{name}: the SDK decoded {packets} of {len(frames)}"
            reference = result(f"decode {name}: dhanhq 2.3.0 (reference)", sdk_ns)
            rows.append(reference)

        def decode_all(frames: list[bytes] = frames) -> None:
            for frame in frames:
                decode_message(frame, TS_RECV)

        ours = measure(decode_all, ops_per_call=len(frames))
        rows.append(result(f"decode {name}: marketpulse decode_message", ours, reference))
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table("dhan_decode", run())

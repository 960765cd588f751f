"""Kite binary decoding: ``feeds.kite.wire.decode_frame`` against the official SDK's parser.

The same bytes go through both: realistic messages of 50 packets each (full, quote, ltp, index
and mixed kinds) and single-packet messages. The reference is ``KiteTicker._parse_binary`` of
``kiteconnect`` 5.2.2, never imported by ``src/``: it runs in a subprocess of
``KITE_SDK_PYTHON``, else of this interpreter when it has the SDK (the ``sdk`` dependency
group), else of ``/tmp/kiteref/bin/python`` (``python3 -m venv /tmp/kiteref &&
/tmp/kiteref/bin/pip install kiteconnect==5.2.2``), timed by the same :func:`bench.measure`.
Without any of them only our numbers are reported. ``ns/op`` is per packet; the encoder (what
the emulator pays) is measured too. Row names say which decoder ran: the compiled one
(``marketpulse.native._kite``, when built) or the pure-Python one (``MARKETPULSE_NATIVE=0``).

    python bench/bench_kite_decode.py      # or: python -m bench kite_decode
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.kite import wire
from marketpulse.feeds.kite.wire import decode_frame, encode_frame
from marketpulse.model import DepthLevel, Tick

ROOT = Path(__file__).resolve().parent.parent
SDK_VERSION = "5.2.2"
DEFAULT_SDK_PYTHON = "/tmp/kiteref/bin/python"
PACKETS_PER_MESSAGE = 50
TS_RECV = 1_765_791_000_125_456_789

# Runs in the SDK's interpreter; imports only the standard-library ``bench`` package from here.
_SDK_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench import measure
from kiteconnect import KiteTicker

parse = KiteTicker("test_api_key", "test_access_token")._parse_binary
out = {}
for name, hexes in json.load(open(sys.argv[2])).items():
    frames = [bytes.fromhex(h) for h in hexes]
    packets = sum(len(parse(f)) for f in frames)
    out[name] = [measure(lambda: [parse(f) for f in frames], ops_per_call=packets), packets]
print(json.dumps(out))
"""


def _tick(rng: random.Random, kind: str, now_ms: int) -> Tick:
    """A plausible tick of ``kind``: NFO options (full), NSE equities (quote/ltp), indices."""
    if kind.startswith("index"):
        token = str((rng.choice([1001, 1016, 1007, 1035]) << 8) | 9)
        ltp = rng.randrange(1_500_000, 6_000_000) / 100
        close = ltp + rng.randrange(-50_000, 50_000) / 100
        return Tick(
            source="kite",
            token=token,
            exchange="NSE_INDEX",
            mode="full" if kind == "index_full" else "quote",
            ltp=ltp,
            open=close,
            high=ltp + 12.5,
            low=ltp - 20.25,
            close=close,
            ts_exchange=now_ms if kind == "index_full" else None,
        )
    segment = 2 if kind == "full" else 1
    token = str((rng.randrange(1_000, 200_000) << 8) | segment)
    paise = rng.randrange(500, 500_000) * 5  # a 0.05 tick grid
    ltp = paise / 100
    if kind == "ltp":
        return Tick(source="kite", token=token, exchange="NSE", mode="ltp", ltp=ltp)
    fields = {
        "ltq": rng.randrange(1, 20) * 25,
        "atp": (paise - 35) / 100,
        "volume": rng.randrange(10_000, 50_000_000),
        "total_buy_qty": rng.randrange(1_000, 2_000_000),
        "total_sell_qty": rng.randrange(1_000, 2_000_000),
        "open": (paise - 100) / 100,
        "high": (paise + 250) / 100,
        "low": (paise - 400) / 100,
        "close": (paise - 60) / 100,
    }
    if kind == "quote":
        return Tick(source="kite", token=token, exchange="NSE", mode="quote", ltp=ltp, **fields)
    return Tick(
        source="kite",
        token=token,
        exchange="NFO",
        mode="full",
        ltp=ltp,
        oi=rng.randrange(10_000, 9_000_000),
        oi_day_high=9_500_000,
        oi_day_low=5_000,
        ts_exchange=now_ms,
        ts_last_trade=now_ms - 1000,
        bids=[DepthLevel((paise - 5 * i) / 100, 25 * (i + 3), i + 1) for i in range(1, 6)],
        asks=[DepthLevel((paise + 5 * i) / 100, 25 * (i + 2), i + 2) for i in range(1, 6)],
        **fields,
    )


def cases() -> dict[str, list[bytes]]:
    """Name -> the binary messages of that case (deterministic)."""
    rng = random.Random(20240115)
    now_ms = 1_765_791_000_000
    n = PACKETS_PER_MESSAGE

    def messages(kinds: list[str], count: int = 20) -> list[bytes]:
        return [
            encode_frame([_tick(rng, kinds[i % len(kinds)], now_ms) for i in range(n)])
            for _ in range(count)
        ]

    return {
        f"full x{n}/msg": messages(["full"]),
        f"quote x{n}/msg": messages(["quote"]),
        f"ltp x{n}/msg": messages(["ltp"]),
        f"index quote+full x{n}/msg": messages(["index_quote", "index_full"]),
        f"mixed x{n}/msg": messages(["full", "quote", "ltp", "index_quote", "full"]),
        "full x1/msg": [encode_frame([_tick(rng, "full", now_ms)]) for _ in range(200)],
    }


def sdk_python() -> str | None:
    """``KITE_SDK_PYTHON``, else this interpreter if it has the SDK, else the throwaway venv."""
    if os.environ.get("KITE_SDK_PYTHON"):
        return os.environ["KITE_SDK_PYTHON"]
    if importlib.util.find_spec("kiteconnect") is not None:
        return sys.executable  # still a subprocess: the SDK's imports stay out of our process
    return DEFAULT_SDK_PYTHON if Path(DEFAULT_SDK_PYTHON).exists() else None


def measure_sdk(all_cases: dict[str, list[bytes]]) -> dict[str, tuple[float, int]] | None:
    """ns per packet of the SDK on each case, or None when no SDK interpreter is available."""
    python = sdk_python()
    if python is None:
        print(
            f"bench_kite_decode: no SDK interpreter (set KITE_SDK_PYTHON or create "
            f"{DEFAULT_SDK_PYTHON} with kiteconnect=={SDK_VERSION}); reporting ours only",
            file=sys.stderr,
        )
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({name: [f.hex() for f in frames] for name, frames in all_cases.items()}, handle)
    try:
        out = subprocess.run(
            [python, "-c", _SDK_SCRIPT, str(ROOT), handle.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    finally:
        os.unlink(handle.name)
    return {name: (ns, packets) for name, (ns, packets) in json.loads(out.stdout).items()}


def decoder() -> str:
    """Which ``decode_frame`` this process runs, for the row names."""
    return "pure Python" if wire.decode_frame is wire._decode_frame_python else "compiled"


def run() -> list[Result]:
    all_cases = cases()
    sdk = measure_sdk(all_cases)
    rows: list[Result] = []
    for name, frames in all_cases.items():
        decoded = [decode_frame(f, TS_RECV) for f in frames]
        packets = sum(len(d.ticks) for d in decoded)
        assert all(not d.errors for d in decoded), "bench frames must decode cleanly"
        reference = None
        if sdk is not None:
            sdk_ns, sdk_packets = sdk[name]
            assert sdk_packets == packets, f"{name}: SDK decoded {sdk_packets}, we {packets}"
            reference = result(f"decode {name}: kiteconnect {SDK_VERSION} (reference)", sdk_ns)
            rows.append(reference)

        def decode_all(frames: list[bytes] = frames) -> None:
            for frame in frames:
                decode_frame(frame, TS_RECV)

        ours = measure(decode_all, ops_per_call=packets)
        rows.append(
            result(f"decode {name}: marketpulse decode_frame ({decoder()})", ours, reference)
        )
    full = [d.ticks for d in (decode_frame(f, TS_RECV) for f in all_cases["full x50/msg"])]
    rows.append(
        result(
            "encode full x50/msg: encode_frame (emulator)",
            measure(lambda: [encode_frame(t) for t in full], ops_per_call=sum(map(len, full))),
        )
    )
    return rows


def main() -> None:
    started = time.perf_counter()
    rows = run()
    width = max(len(row["name"]) for row in rows)
    print(f"{'case':<{width}}  {'ns/packet':>10}  {'packets/s':>12}  vs reference")
    for row in rows:
        ratio = f"{row['ratio']:.1f}x faster" if "ratio" in row else ""
        ns, per_s = row["ns_per_op"], row["ops_per_s"]
        print(f"{row['name']:<{width}}  {ns:>10,.0f}  {per_s:>12,.0f}  {ratio}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

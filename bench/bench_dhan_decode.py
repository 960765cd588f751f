"""Dhan binary decoding: ``feeds.dhan.wire.decode_message`` against the official SDK's parser.

The same bytes go through both: one packet per WebSocket message, as Dhan sends them (full,
quote, ticker). The reference is ``MarketFeed.process_data`` of ``dhanhq`` 2.3.0 (test/benchmark
only, never imported by ``src/``), run in a subprocess of this interpreter and timed by the same
:func:`bench.measure` (CPU time, best of 9). ``ns/op`` is per packet.

Two more rows per case show where the ceiling is, both against the same SDK time:

* ``floor: output construction only`` builds nothing but the canonical output from values that
  are already unpacked and an instrument key already known: the ``Tick`` (for full, with its
  two lists of five ``DepthLevel``) with every float32 price rounded to the segment grid the
  cheapest exact way the decoder knows (``(x*s + 1.5*2**52 - 1.5*2**52) / s``, no NaN guard),
  no parsing, no cache lookup, no ``Decoded`` result, no function call per packet. No pure-Python
  decoder that returns the canonical ``Tick`` can beat it, so if its ratio is below 10× a 10×
  target is out of reach for that case.
* ``scale: struct.unpack_from alone`` is the one C call that unpacks the packet's layout, for
  comparison with both.

``decode_message`` is the compiled decoder of :mod:`marketpulse.native` when it is built, the
pure-Python one otherwise or with ``MARKETPULSE_NATIVE=0``; its row says which one ran
("(compiled)" or "(pure Python)"), so that runs of both can be put side by side.

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
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.dhan import wire
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


DECODER = "pure Python" if wire.decode_message is wire._decode_message else "compiled"
"""Which ``decode_message`` this process runs (see :mod:`marketpulse.native`)."""

_RINT = 6755399441055744.0  # 1.5 * 2**52: (y + _RINT) - _RINT is round-half-even for |y| < 2**51
_LAYOUT = {"full": wire._FULL, "quote": wire._QUOTE, "ltp": wire._TICKER}
_MODE_OF_CODE = {wire.CODE_FULL: "full", wire.CODE_QUOTE: "quote", wire.CODE_TICKER: "ltp"}
Prepared = tuple[str, str, float, bool, tuple[Any, ...]]


def _prepare(frames: list[bytes]) -> list[Prepared]:
    """Unpacked values and (key, exchange, scale, derivative) of each frame, made untimed."""
    out: list[Prepared] = []
    for frame in frames:
        values = _LAYOUT[_MODE_OF_CODE[frame[0]]].unpack_from(frame)
        seg = values[2]
        exchange = wire.CANONICAL_EXCHANGE[wire.SEGMENT_NAMES[seg]]
        scale = 10_000.0 if seg in (3, 7) else 100.0
        out.append((wire.make_key(seg, values[3]), exchange, scale, seg in (2, 3, 5, 7, 8), values))
    return out


def _build_full(prepared: list[Prepared], ts_recv: int, off: int) -> list[Tick]:
    out = []
    m = _RINT
    for key, exchange, s, deriv, v in prepared:
        (_, _, _, _, ltp, ltq, ltt, atp, vol, sell, buy, oi, oih, oil, op, _, hi, lo,
         bq1, aq1, bo1, ao1, bp1, ap1, bq2, aq2, bo2, ao2, bp2, ap2,
         bq3, aq3, bo3, ao3, bp3, ap3, bq4, aq4, bo4, ao4, bp4, ap4,
         bq5, aq5, bo5, ao5, bp5, ap5) = v  # fmt: skip
        out.append(Tick(
            "dhan", key, exchange, "full", (ltp * s + m - m) / s, None, ltq,
            (atp * s + m - m) / s, vol, buy, sell, (op * s + m - m) / s, (hi * s + m - m) / s,
            (lo * s + m - m) / s, None, None, None, oi if deriv else None,
            oih if deriv else None, oil if deriv else None, None, None, None, None, None,
            (ltt - off) * 1000 if ltt else None, ts_recv,
            [DepthLevel((bp1 * s + m - m) / s, bq1, bo1),
             DepthLevel((bp2 * s + m - m) / s, bq2, bo2),
             DepthLevel((bp3 * s + m - m) / s, bq3, bo3),
             DepthLevel((bp4 * s + m - m) / s, bq4, bo4),
             DepthLevel((bp5 * s + m - m) / s, bq5, bo5)],
            [DepthLevel((ap1 * s + m - m) / s, aq1, ao1),
             DepthLevel((ap2 * s + m - m) / s, aq2, ao2),
             DepthLevel((ap3 * s + m - m) / s, aq3, ao3),
             DepthLevel((ap4 * s + m - m) / s, aq4, ao4),
             DepthLevel((ap5 * s + m - m) / s, aq5, ao5)],
        ))  # fmt: skip
    return out


def _build_quote(prepared: list[Prepared], ts_recv: int, off: int) -> list[Tick]:
    out = []
    m = _RINT
    for key, exchange, s, _, v in prepared:
        _, _, _, _, ltp, ltq, ltt, atp, vol, sell, buy, op, _, hi, lo = v
        out.append(Tick(
            "dhan", key, exchange, "quote", (ltp * s + m - m) / s, None, ltq,
            (atp * s + m - m) / s, vol, buy, sell, (op * s + m - m) / s, (hi * s + m - m) / s,
            (lo * s + m - m) / s, ts_last_trade=(ltt - off) * 1000 if ltt else None,
            ts_recv=ts_recv,
        ))  # fmt: skip
    return out


def _build_ltp(prepared: list[Prepared], ts_recv: int, off: int) -> list[Tick]:
    out = []
    m = _RINT
    for key, exchange, s, _, v in prepared:
        ltp, ltt = v[4], v[5]
        out.append(Tick(
            "dhan", key, exchange, "ltp", (ltp * s + m - m) / s,
            ts_last_trade=(ltt - off) * 1000 if ltt else None, ts_recv=ts_recv,
        ))  # fmt: skip
    return out


_BUILD = {"full": _build_full, "quote": _build_quote, "ltp": _build_ltp}


def _floor(mode: str, frames: list[bytes], expected: list[Tick]) -> float:
    """ns per packet to build the canonical output alone (checked equal to the decoder's)."""
    prepared = _prepare(frames)
    build = _BUILD[mode]
    off = wire.IST_OFFSET_SECONDS
    assert build(prepared, TS_RECV, off) == expected, f"{mode}: the floor builds other ticks"
    return measure(lambda: build(prepared, TS_RECV, off), ops_per_call=len(frames))


def _unpack_alone(mode: str, frames: list[bytes]) -> float:
    unpack = _LAYOUT[mode].unpack_from

    def unpack_all() -> None:
        for frame in frames:
            unpack(frame)

    return measure(unpack_all, ops_per_call=len(frames))


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
        ours_name = f"decode {name}: marketpulse decode_message ({DECODER})"
        rows.append(result(ours_name, ours, reference))

        mode = name.split()[0]
        expected = [d.ticks[0] for d in decoded]
        what = "Tick + 10 DepthLevel" if mode == "full" else "Tick"
        floor = f"floor {name}: output construction only ({what}, rounded; no parsing)"
        rows.append(result(floor, _floor(mode, frames, expected), reference))
        alone = f"scale {name}: struct.unpack_from alone"
        rows.append(result(alone, _unpack_alone(mode, frames), reference))
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table("dhan_decode", run())

"""Angel One binary decode: marketpulse's ``feeds/angelone/wire.py`` against the official SDK.

Both sides decode the *same bytes* (deterministic, realistic packets made by our encoder, whose
output the unit tests pin to the spec's vectors) in a plain loop that drops each result, and
both report the best of several runs in thread CPU time (``bench.measure``), the figure least
disturbed by other processes. The reference is ``smartapi-python``'s
``SmartWebSocketV2._parse_binary_data`` (the ``sdk`` dependency group, test/benchmark only). It
runs in a subprocess, loaded by the spec's §7 offline recipe (the module file alone: no
``SmartApi/__init__`` network call, no constructor log files), with the interpreter named by
``ANGELONE_SDK_PYTHON``, else this one when it has the SDK, else a throwaway virtualenv at
``/tmp/angelref/bin/python``:

    python3 -m venv /tmp/angelref
    /tmp/angelref/bin/pip install smartapi-python==1.5.5 websocket-client logzero

Without any of them only our rows are reported (and a note on stderr says why).

Run alone with ``python bench/bench_angelone_decode.py``; ``python -m bench angelone_decode``
runs it with the others.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.angelone import wire
from marketpulse.model import DepthLevel, Tick

SDK_VERSION = "1.5.5"
DEFAULT_SDK_PYTHON = "/tmp/angelref/bin/python"
PACKETS = 1_000
_TS_RECV = 1_705_293_930_123_000_000

KINDS: dict[str, wire.WireMode] = {
    "snap_quote": wire.WireMode.SNAP_QUOTE,
    "quote": wire.WireMode.QUOTE,
    "ltp": wire.WireMode.LTP,
}

# Runs inside the SDK's virtualenv as a worker, so its rounds can be interleaved with ours and a
# load change on a shared machine hits both sides alike. Protocol (one JSON document per line):
# first line {"packets": [hex, ...]} → {"version": ...}; then each line {"calls": n} → the loop
# over all packets is run n times and {"ns_per_op": thread CPU ns per packet} comes back.
_SDK_WORKER = r"""
import importlib.metadata, importlib.util, json, os, sys, time
spec = importlib.util.find_spec("SmartApi")  # locates the package without running __init__
if spec is None or not spec.submodule_search_locations:
    print(json.dumps({"error": "smartapi-python is not installed in that interpreter"}))
    raise SystemExit(0)
path = os.path.join(list(spec.submodule_search_locations)[0], "smartWebSocketV2.py")
mspec = importlib.util.spec_from_file_location("_angel_sws2", path)
mod = importlib.util.module_from_spec(mspec)
mspec.loader.exec_module(mod)
parse = mod.SmartWebSocketV2.__new__(mod.SmartWebSocketV2)._parse_binary_data
packets = [bytes.fromhex(h) for h in json.loads(sys.stdin.readline())["packets"]]
for p in packets:
    parse(p)
print(json.dumps({"version": importlib.metadata.version("smartapi-python")}), flush=True)
for line in sys.stdin:
    calls = json.loads(line)["calls"]
    t0 = time.thread_time_ns()
    for _ in range(calls):
        for p in packets:
            parse(p)
    ns = (time.thread_time_ns() - t0) / (calls * len(packets))
    print(json.dumps({"ns_per_op": ns}), flush=True)
"""


def make_packets(mode: wire.WireMode, count: int = PACKETS, seed: int = 7) -> list[bytes]:
    """Realistic packets: 200 tokens over NSE and NFO, prices on the 5-paise grid, full books."""
    rng = random.Random(seed)
    tokens = [str(rng.randrange(1_000, 99_999)) for _ in range(200)]
    packets = []
    for i in range(count):
        base = rng.randrange(10_000, 3_000_000, 5)  # paise
        close = base + rng.randrange(-5_000, 5_000, 5)
        tick = Tick(
            source=wire.SOURCE,
            token=tokens[i % len(tokens)],
            exchange="NFO" if i % 2 else "NSE",
            mode="full",
            ltp=base / 100,
            ltq=rng.randrange(1, 500),
            atp=(base - 35) / 100,
            volume=rng.randrange(1_000, 10_000_000),
            total_buy_qty=rng.randrange(0, 1_000_000),
            total_sell_qty=rng.randrange(0, 1_000_000),
            open=(close + 100) / 100,
            high=(base + 900) / 100,
            low=(base - 900) / 100,
            close=close / 100,
            oi=rng.randrange(0, 5_000_000),
            upper_circuit=(close * 11 // 50 * 5) / 100,
            lower_circuit=(close * 9 // 50 * 5) / 100,
            high_52w=(base + 50_000) / 100,
            low_52w=(base - 5_000) / 100,
            ts_exchange=1_705_293_930_123 + i,
            ts_last_trade=1_705_293_925_000,
            bids=[DepthLevel((base - 5 * k) / 100, rng.randrange(1, 900), k + 1) for k in range(5)],
            asks=[
                DepthLevel((base + 5 + 5 * k) / 100, rng.randrange(1, 900), k + 1) for k in range(5)
            ],
        )
        packets.append(wire.encode_packet(tick, mode, sequence=i))
    return packets


def sdk_python() -> str | None:
    """``ANGELONE_SDK_PYTHON``, else this interpreter if it has the SDK, else the throwaway venv.

    Still a subprocess when it is this interpreter: the SDK's imports stay out of our process.
    """
    if os.environ.get("ANGELONE_SDK_PYTHON"):
        return os.environ["ANGELONE_SDK_PYTHON"]
    if importlib.util.find_spec("SmartApi") is not None:  # the ``sdk`` dependency group
        return sys.executable
    return DEFAULT_SDK_PYTHON if Path(DEFAULT_SDK_PYTHON).exists() else None


class SdkWorker:
    """The official parser in its own virtualenv, timed on request (see ``_SDK_WORKER``)."""

    def __init__(self, python: str, packets: list[bytes]) -> None:
        self._proc = subprocess.Popen(
            [python, "-c", _SDK_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=os.environ.get("TMPDIR", "/tmp"),  # in case anything writes ./logs
        )
        self.version = str(self._ask({"packets": [p.hex() for p in packets]})["version"])

    def _ask(self, request: dict[str, object]) -> dict[str, object]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self.close()
            stderr = self._proc.stderr.read() if self._proc.stderr is not None else ""
            raise RuntimeError(f"SDK worker died: {stderr.strip()[-500:]}")
        answer: dict[str, object] = json.loads(line)
        if "error" in answer:
            self.close()
            raise RuntimeError(str(answer["error"]))
        return answer

    def ns_per_op(self, calls: int) -> float:
        return float(self._ask({"calls": calls})["ns_per_op"])  # type: ignore[arg-type]

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _ns_per_op(loop: Callable[[], object], calls: int, ops: int) -> float:
    started = time.thread_time_ns()
    for _ in range(calls):
        loop()
    return (time.thread_time_ns() - started) / (calls * ops)


def interleaved(
    worker: SdkWorker, loop: Callable[[], object], ops: int, repeat: int = 9, min_time: float = 0.2
) -> tuple[float, float]:
    """Best ns per packet of (SDK, ours), measured in alternating runs of about ``min_time`` s."""
    sdk_calls = max(1, int(min_time * 1e9 / (worker.ns_per_op(1) * ops)))
    ours_calls = max(1, int(min_time * 1e9 / (_ns_per_op(loop, 1, ops) * ops)))
    sdk = ours = float("inf")
    for _ in range(repeat):
        sdk = min(sdk, worker.ns_per_op(sdk_calls))
        ours = min(ours, _ns_per_op(loop, ours_calls, ops))
    return sdk, ours


def run() -> list[Result]:
    """Per packet kind: the SDK's parser (reference), our decode_one loop, our batch API."""
    python = sdk_python()
    if python is None:
        print(
            f"angelone_decode: no SDK reference (install the sdk dependency group, set "
            f"ANGELONE_SDK_PYTHON, or create {DEFAULT_SDK_PYTHON}: pip install "
            f"smartapi-python=={SDK_VERSION} websocket-client logzero)",
            file=sys.stderr,
        )
    results: list[Result] = []
    for name, mode in KINDS.items():
        packets = make_packets(mode)
        loop = partial(_decode_all, packets)
        batch = partial(wire.decode_packets, packets, _TS_RECV)
        label = f"angelone {name}: wire.decode_one -> Tick ({_decoder(mode)})"
        reference: Result | None = None
        worker = None
        try:
            worker = SdkWorker(python, packets) if python is not None else None
            if worker is not None:
                sdk_ns, ours_ns = interleaved(worker, loop, len(packets))
                reference = result(
                    f"angelone {name}: smartapi-python {worker.version} _parse_binary_data", sdk_ns
                )
                results += [reference, result(label, ours_ns, reference)]
        except (RuntimeError, OSError, ValueError) as exc:
            print(f"angelone_decode: SDK reference failed: {exc}", file=sys.stderr)
        finally:
            if worker is not None:
                worker.close()
        if reference is None:
            results.append(result(label, measure(loop, ops_per_call=len(packets))))
        results.append(
            result(
                f"angelone {name}: wire.decode_packets (batch of {len(packets)})",
                measure(batch, ops_per_call=len(packets)),
                reference,
            )
        )
    return results


def _decoder(mode: wire.WireMode) -> str:
    """Which SNAP_QUOTE decoder ran: the compiled one (marketpulse.native) or the Python one."""
    compiled = mode is wire.WireMode.SNAP_QUOTE and wire._snap is not wire._decode_snap
    return "compiled" if compiled else "pure Python"


def _decode_all(packets: list[bytes]) -> None:
    decode = wire.decode_one
    for p in packets:
        decode(p, _TS_RECV)


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table("angelone_decode", run())

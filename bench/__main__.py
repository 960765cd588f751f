"""Run the benchmarks: ``python -m bench`` (all), ``python -m bench tick`` (bench_tick only)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from collections.abc import Callable
from typing import cast

import bench
from bench import Result, machine


def discover() -> list[str]:
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith("bench_")
    )


def main() -> None:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(available)} (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(available)}")
    info = machine()
    if not args.json:
        print(f"machine: {info['cpu']}, {info['nproc']} CPUs, Python {info['python']}")
    for name in args.names or available:
        module = importlib.import_module(f"bench.bench_{name}")
        results = cast(Callable[[], list[Result]], module.run)()
        if args.json:
            for row in results:
                print(json.dumps({"bench": name, **row, "machine": info}))
        else:
            print_table(name, results)


def print_table(name: str, results: list[Result]) -> None:
    print(f"\n== {name}")
    width = max(len(row["name"]) for row in results)
    print(f"{'case':<{width}}  {'ns/op':>10}  {'ops/s':>12}  vs reference")
    for row in results:
        ratio = f"{row['ratio']:.2f}x {row['reference']}" if "ratio" in row else ""
        print(
            f"{row['name']:<{width}}  {row['ns_per_op']:>10,.0f}  {row['ops_per_s']:>12,.0f}  "
            f"{ratio}"
        )


if __name__ == "__main__":
    main()

"""The examples in examples/ run against a live service and print ticks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from marketpulse.config import Settings
from tests.support.service import running_service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def run_example(name: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_print_ticks_and_the_group_worker_run_against_the_service(
    settings: Settings,
) -> None:
    assert settings.redis_url
    prefix = ["--stream-prefix", settings.symbol_stream_prefix]
    async with running_service(settings):
        printed = await run_example("print_ticks.py", settings.redis_url, "RELIANCE.NSE",
                                    "--seconds", "3", *prefix)  # fmt: skip
        averaged = await run_example(
            "moving_average_group.py",
            settings.redis_url,
            "--name",
            "w1",
            "--seconds",
            "4",
            *prefix,
        )
    lines = [line for line in printed.splitlines() if "RELIANCE.NSE" in line]
    assert len(lines) >= 2
    assert "-tick average" in averaged

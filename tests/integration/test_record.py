"""``marketpulse record`` writes canonical tick JSON lines from a live feed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.model import TICK_FIELDS


async def test_record_writes_one_canonical_tick_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_ALWAYS_OPEN", "true")
    monkeypatch.setenv("SIM_TICKS_PER_SECOND", "500")
    out = tmp_path / "ticks.jsonl"
    # RELIANCE.NSE and INFY.NSE tokens of the simulator universe
    from datetime import date

    from marketpulse.feeds.simulator import default_universe

    universe = default_universe(date.today())
    tokens = [universe.token_of("RELIANCE.NSE"), universe.token_of("INFY.NSE")]
    args = ["record", "--feed", "sim", "--tokens", ",".join(tokens), "--mode", "quote",
            "--duration", "2", "--out", str(out)]  # fmt: skip
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) > 100
    assert {t["token"] for t in lines} == set(tokens)
    assert {t["mode"] for t in lines} == {"quote"}
    assert all(set(t) <= set(TICK_FIELDS) for t in lines)
    assert f"recorded {len(lines):,} ticks" in result.output


def test_record_needs_exactly_one_instrument_list() -> None:
    result = CliRunner().invoke(app, ["record", "--feed", "sim"])
    assert result.exit_code == 1
    assert "exactly one of --tokens or --symbols" in result.output


def test_replay_of_a_feed_without_raw_frames_is_a_clear_error(tmp_path: Path) -> None:
    capture = tmp_path / "x.bin"
    capture.write_bytes(b"MPRAW1\n")
    result = CliRunner().invoke(app, ["replay", str(capture), "--feed", "sim"])
    assert result.exit_code == 1
    assert "no raw frame decoder" in result.output

"""``event_loop.run``: uvloop by default where it is installed, asyncio's loop on request, and a
clear error when uvloop is asked for but missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from marketpulse import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert event_loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_keeps_the_standard_loop() -> None:
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_auto_without_uvloop_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop.run(_loop_module()).startswith("asyncio")
    with pytest.raises(RuntimeError, match="EVENT_LOOP=uvloop, but uvloop is not installed"):
        event_loop.run(_loop_module(), "uvloop")

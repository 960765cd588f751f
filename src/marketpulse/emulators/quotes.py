"""The market depth in the emulators' REST quote answers.

Kite, Angel One and Dhan spell a depth level the same way in their quote JSON (``{"price",
"quantity", "orders"}``, bids under ``buy`` and asks under ``sell``); this is that spelling, once.
Paytm orders the keys differently (``quantity`` first, as its docs show) and keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marketpulse.model import DepthLevel, Tick


def depth_rows(levels: Iterable[DepthLevel] | None) -> list[dict[str, Any]]:
    """One side of the book, best level first."""
    return [{"price": lv.price, "quantity": lv.qty, "orders": lv.orders} for lv in levels or ()]


def depth_of(tick: Tick) -> dict[str, list[dict[str, Any]]]:
    """The tick's book as ``{"buy": bids, "sell": asks}``."""
    return {"buy": depth_rows(tick.bids), "sell": depth_rows(tick.asks)}

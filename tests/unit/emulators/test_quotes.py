"""The depth spelling the Kite, Angel One and Dhan quote emulators share."""

from __future__ import annotations

from marketpulse.emulators.quotes import depth_of, depth_rows
from marketpulse.model import DepthLevel, Tick


def test_depth_rows_spell_price_quantity_orders_best_first() -> None:
    rows = depth_rows([DepthLevel(10.5, 100, 2), DepthLevel(10.45, 50, 1)])
    assert rows == [{"price": 10.5, "quantity": 100, "orders": 2},
                    {"price": 10.45, "quantity": 50, "orders": 1}]  # fmt: skip
    assert list(rows[0]) == ["price", "quantity", "orders"]
    assert depth_rows(None) == []


def test_depth_of_puts_bids_under_buy_and_asks_under_sell() -> None:
    tick = Tick("sim", "1", "NSE", "full", 10.5, bids=[DepthLevel(10.45, 5, 1)],
                asks=[DepthLevel(10.55, 7, 2)])  # fmt: skip
    assert depth_of(tick) == {"buy": [{"price": 10.45, "quantity": 5, "orders": 1}],
                              "sell": [{"price": 10.55, "quantity": 7, "orders": 2}]}  # fmt: skip

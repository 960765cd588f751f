"""Cost of the canonical Tick: building a full-mode tick, and its JSON encode/decode.

Every feed decoder builds ticks and every consumer (Redis streams, WebSocket fan-out, the
recorder) encodes or decodes them, so these are per-tick costs the whole pipeline pays. The
reference is what the same work costs with a plain dict and the standard library's json.
"""

from __future__ import annotations

import json
from typing import Any

from bench import Result, measure, result
from marketpulse.model import DepthLevel, Tick, decode_tick, encode_tick

# A realistic full-mode NSE tick; values vary per call only as much as a decoder's would not.
_LTP = 1545.35
_BIDS = [(1545.3 - 0.05 * i, 120 + 7 * i, 3 + i) for i in range(5)]
_ASKS = [(1545.35 + 0.05 * i, 95 + 11 * i, 2 + i) for i in range(5)]
_FIELDS: dict[str, Any] = {
    "source": "sim",
    "token": "738561",
    "exchange": "NSE",
    "mode": "full",
    "ltp": _LTP,
    "symbol": "RELIANCE.NSE",
    "ltq": 25,
    "atp": 1541.72,
    "volume": 3_412_877,
    "total_buy_qty": 412_300,
    "total_sell_qty": 398_775,
    "open": 1537.0,
    "high": 1549.9,
    "low": 1533.1,
    "close": 1535.0,
    "change": _LTP - 1535.0,
    "change_pct": (_LTP - 1535.0) * 100.0 / 1535.0,
    "ts_exchange": 1_765_791_000_123,
    "ts_last_trade": 1_765_791_000_120,
    "ts_recv": 1_765_791_000_125_456_789,
}


def build_keywords() -> Tick:
    """How a decoder usually writes it: depth levels, then the tick by keyword."""
    f = _FIELDS
    return Tick(
        source=f["source"], token=f["token"], exchange=f["exchange"], mode=f["mode"],
        ltp=f["ltp"], symbol=f["symbol"], ltq=f["ltq"], atp=f["atp"], volume=f["volume"],
        total_buy_qty=f["total_buy_qty"], total_sell_qty=f["total_sell_qty"],
        open=f["open"], high=f["high"], low=f["low"], close=f["close"],
        change=f["change"], change_pct=f["change_pct"], ts_exchange=f["ts_exchange"],
        ts_last_trade=f["ts_last_trade"], ts_recv=f["ts_recv"],
        bids=[DepthLevel(p, q, o) for p, q, o in _BIDS],
        asks=[DepthLevel(p, q, o) for p, q, o in _ASKS],
    )  # fmt: skip


def build_positional() -> Tick:
    """The same tick with positional arguments, as the simulator builds it."""
    f = _FIELDS
    return Tick(
        f["source"], f["token"], f["exchange"], f["mode"], f["ltp"], f["symbol"],
        f["ltq"], f["atp"], f["volume"], f["total_buy_qty"], f["total_sell_qty"],
        f["open"], f["high"], f["low"], f["close"], f["change"], f["change_pct"],
        None, None, None, None, None, None, None,
        f["ts_exchange"], f["ts_last_trade"], f["ts_recv"],
        [DepthLevel(p, q, o) for p, q, o in _BIDS],
        [DepthLevel(p, q, o) for p, q, o in _ASKS],
    )  # fmt: skip


def build_dict() -> dict[str, Any]:
    """Reference: the same data as a plain dict with ``[price, qty, orders]`` lists."""
    f = _FIELDS
    return {
        "source": f["source"], "token": f["token"], "exchange": f["exchange"],
        "mode": f["mode"], "ltp": f["ltp"], "symbol": f["symbol"], "ltq": f["ltq"],
        "atp": f["atp"], "volume": f["volume"], "total_buy_qty": f["total_buy_qty"],
        "total_sell_qty": f["total_sell_qty"], "open": f["open"], "high": f["high"],
        "low": f["low"], "close": f["close"], "change": f["change"],
        "change_pct": f["change_pct"], "ts_exchange": f["ts_exchange"],
        "ts_last_trade": f["ts_last_trade"], "ts_recv": f["ts_recv"],
        "bids": [[p, q, o] for p, q, o in _BIDS], "asks": [[p, q, o] for p, q, o in _ASKS],
    }  # fmt: skip


def run() -> list[Result]:
    tick = build_keywords()
    assert build_positional() == tick
    document = build_dict()
    encoded = encode_tick(tick)
    text = json.dumps(document, separators=(",", ":"))
    assert json.loads(encoded) == json.loads(text), "reference must encode the same document"
    assert decode_tick(encoded) == tick

    ref_build = result("build: dict + lists (reference)", measure(build_dict))
    compact = json.JSONEncoder(separators=(",", ":")).encode
    ref_encode = result("encode: json.dumps(dict) (reference)", measure(lambda: compact(document)))
    ref_decode = result("decode: json.loads -> dict (reference)", measure(lambda: json.loads(text)))
    return [
        ref_build,
        result("build: Tick by keyword, 5+5 depth", measure(build_keywords), ref_build),
        result("build: Tick positional, 5+5 depth", measure(build_positional), ref_build),
        ref_encode,
        result("encode: model.encode_tick", measure(lambda: encode_tick(tick)), ref_encode),
        ref_decode,
        result(
            "decode: model.decode_tick -> Tick", measure(lambda: decode_tick(encoded)), ref_decode
        ),
    ]

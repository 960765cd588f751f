"""Paytm Money binary decoding: ``feeds.paytm.wire.decode_frame`` against a reference decoder.

There is no installable official parser (the SDK is not on PyPI and its ``setup.py`` is empty,
spec §11), so the reference is written here from the spec's §5 tables the straightforward way:
one ``struct.unpack_from`` per field, building a dict per packet with prices rounded to 2 dp
and times converted to Unix seconds — what the official Python SDK's ``parse_binary`` returns.
Both decode the same frames (packets concatenated, as Paytm sends them), CPU time, best of 9;
``ns/op`` is per packet.

    python bench/bench_paytm_decode.py      # or: python -m bench paytm_decode
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.paytm import wire
from marketpulse.model import DepthLevel, Tick

TS_RECV = 1_765_791_000_125_456_789
_OFFSET = wire.EPOCH_OFFSET


def _f32(buf: bytes, pos: int) -> float:
    return round(struct.unpack_from("<f", buf, pos)[0], 2)


def _u32(buf: bytes, pos: int) -> int:
    return int(struct.unpack_from("<I", buf, pos)[0])


def _u8(buf: bytes, pos: int) -> int:
    return buf[pos]


def _quote_body(buf: bytes, p: int, out: dict[str, Any]) -> None:
    out.update(last_price=_f32(buf, p + 1), last_trade_time=_u32(buf, p + 5) + _OFFSET,
               security_id=_u32(buf, p + 9), tradable=_u8(buf, p + 13), mode=_u8(buf, p + 14),
               last_traded_quantity=_u32(buf, p + 15), average_traded_price=_f32(buf, p + 19),
               volume_traded=_u32(buf, p + 23), total_buy_quantity=_u32(buf, p + 27),
               total_sell_quantity=_u32(buf, p + 31), open=_f32(buf, p + 35),
               close=_f32(buf, p + 39), high=_f32(buf, p + 43), low=_f32(buf, p + 47),
               change_percent=_f32(buf, p + 51), change_absolute=_f32(buf, p + 55),
               fifty_two_week_high=_f32(buf, p + 59),
               fifty_two_week_low=_f32(buf, p + 63))  # fmt: skip


def reference_decode(buf: bytes) -> list[dict[str, Any]]:
    """Spec §5, one ``unpack_from`` per field (the SDK's approach, written independently)."""
    out: list[dict[str, Any]] = []
    pos, n = 0, len(buf)
    while pos < n:
        kind = buf[pos]
        packet: dict[str, Any] = {}
        if kind in (61, 64):
            packet.update(last_price=_f32(buf, pos + 1), time=_u32(buf, pos + 5) + _OFFSET,
                          security_id=_u32(buf, pos + 9), tradable=_u8(buf, pos + 13),
                          mode=_u8(buf, pos + 14), change_absolute=_f32(buf, pos + 15),
                          change_percent=_f32(buf, pos + 19))  # fmt: skip
            pos += 23
        elif kind == 62:
            _quote_body(buf, pos, packet)
            pos += 67
        elif kind == 63:
            depth = {}
            for k in range(5):
                d = pos + 1 + 20 * k
                depth[f"depth_packet_#{k + 1}"] = {
                    "buy_quantity": _u32(buf, d), "sell_quantity": _u32(buf, d + 4),
                    "buy_order": struct.unpack_from("<h", buf, d + 8)[0],
                    "sell_order": struct.unpack_from("<h", buf, d + 10)[0],
                    "buy_price": _f32(buf, d + 12), "sell_price": _f32(buf, d + 16),
                }  # fmt: skip
            packet["depth_packet"] = depth
            _quote_body(buf, pos + 100, packet)
            packet["OI"] = _u32(buf, pos + 167)
            packet["OI_change"] = struct.unpack_from("<i", buf, pos + 171)[0]
            pos += 175
        elif kind in (65, 66):
            packet.update(last_price=_f32(buf, pos + 1), security_id=_u32(buf, pos + 5),
                          tradable=_u8(buf, pos + 9), mode=_u8(buf, pos + 10),
                          open=_f32(buf, pos + 11), close=_f32(buf, pos + 15),
                          high=_f32(buf, pos + 19), low=_f32(buf, pos + 23),
                          change_percent=_f32(buf, pos + 27),
                          change_absolute=_f32(buf, pos + 31))  # fmt: skip
            if kind == 65:
                packet.update(fifty_two_week_high=_f32(buf, pos + 35),
                              fifty_two_week_low=_f32(buf, pos + 39))  # fmt: skip
                pos += 43
            else:
                packet["last_update_time"] = _u32(buf, pos + 35) + _OFFSET
                pos += 39
        else:
            break
        out.append(packet)
    return out


def _tick(rng: random.Random, key: str, mode: str) -> Tick:
    paise = rng.randrange(500, 500_000) * 5
    ltp, ts = paise / 100, 1_765_791_000_000
    index = key.endswith(":INDEX")
    base = {"source": "paytm", "token": key, "exchange": "NSE", "mode": mode, "ltp": ltp,
            "change": 1.25, "change_pct": 0.5}  # fmt: skip
    if index:
        return Tick(**base, open=ltp - 10, close=ltp - 5, high=ltp + 20, low=ltp - 30,
                    high_52w=ltp * 1.2, low_52w=ltp * 0.8, ts_exchange=ts)  # fmt: skip
    return Tick(
        **base, ltq=rng.randrange(1, 20) * 25, atp=(paise - 35) / 100,
        volume=rng.randrange(10**4, 10**8), total_buy_qty=rng.randrange(1000, 2_000_000),
        total_sell_qty=rng.randrange(1000, 2_000_000), open=(paise - 100) / 100,
        close=(paise - 50) / 100, high=(paise + 250) / 100, low=(paise - 400) / 100,
        high_52w=ltp * 1.5, low_52w=ltp * 0.5, oi=rng.randrange(10**4, 10**7),
        ts_last_trade=ts,
        bids=[DepthLevel((paise - 5 * i) / 100, 25 * (i + 3), i + 1) for i in range(1, 6)],
        asks=[DepthLevel((paise + 5 * i) / 100, 25 * (i + 2), i + 2) for i in range(1, 6)],
    )  # fmt: skip


# A realistic mix: option chains stream LTP, watchlists quote, a few full books, indices.
_MIX = ("ltp",) * 4 + ("quote",) * 3 + ("full",) * 2 + ("index",)


def cases() -> tuple[wire.KeyBook, dict[str, list[bytes]]]:
    rng = random.Random(20240715)
    book = wire.KeyBook()
    next_id = iter(range(1000, 10**6))

    def packet(kind: str) -> bytes:
        if kind == "index":
            key = wire.make_key("NSE", next(next_id), "INDEX")
            mode = rng.choice(["ltp", "quote", "full"])
        else:
            key = wire.make_key("NSE", next(next_id), "OPTION")
            mode = kind
        book.add([key])
        return wire.encode_tick(_tick(rng, key, mode))

    out = {
        "mixed, 10 per frame": [b"".join(packet(k) for k in _MIX) for _ in range(100)],
        "ltp, 4 per frame": [b"".join(packet("ltp") for _ in range(4)) for _ in range(250)],
        "full, 1 per frame": [packet("full") for _ in range(500)],
    }
    return book, out


def run() -> list[Result]:
    book, all_cases = cases()
    labels = book.labels
    rows: list[Result] = []
    for name, frames in all_cases.items():
        packets = sum(len(reference_decode(f)) for f in frames)
        ours_decoded = [wire.decode_frame(f, labels, TS_RECV) for f in frames]
        assert sum(len(d.ticks) for d in ours_decoded) == packets
        assert not any(d.errors or d.unmapped for d in ours_decoded)

        def reference(frames: list[bytes] = frames) -> None:
            for frame in frames:
                reference_decode(frame)

        def ours(frames: list[bytes] = frames) -> None:
            for frame in frames:
                wire.decode_frame(frame, labels, TS_RECV)

        ref = result(f"decode {name}: struct-per-field reference",
                     measure(reference, ops_per_call=packets))  # fmt: skip
        rows.append(ref)
        rows.append(result(f"decode {name}: marketpulse decode_frame",
                           measure(ours, ops_per_call=packets), ref))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table("paytm_decode", run())

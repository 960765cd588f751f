"""Yahoo streamer decoding: ``feeds.yahoo.wire`` against yfinance's ``_decode_message``.

The same base64 ``PricingData`` messages go through both: 500 equity/index messages shaped like
the emulator's (16 fields, as in the spec's example 1) and 500 crypto messages shaped like the
real BTC-USD capture (20 fields). The reference is ``BaseWebSocket._decode_message`` of yfinance
1.7.0 (protobuf 7.x upb parser + ``MessageToDict``; test/benchmark only, never imported by
``src/``), in-process, timed by the same :func:`bench.measure` (CPU time, best of 9). ``ns/op``
is per message. Ours is timed twice: to the ``PricingData`` struct (what yfinance's dict is) and
the whole hot path, envelope JSON → canonical ``Tick`` (what the feed does per frame).

    python bench/bench_yahoo_decode.py      # or: python -m bench yahoo_decode
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import random
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import Result, measure, result
from marketpulse.feeds.yahoo.wire import (
    PricingData,
    decode_base64,
    decode_frame,
    encode_frame,
    encode_pricing,
)

TS_RECV = 1_765_791_000_125_456_789


def _equity(rng: random.Random) -> PricingData:
    price = rng.randrange(500, 500_000) * 5 / 100
    close = price * rng.uniform(0.95, 1.05)
    return PricingData(
        id=f"SYM{rng.randrange(1000)}.NS", price=price, time=1_765_791_000_000,
        currency="INR", exchange="NSI", quote_type=8, market_hours=1,
        change_percent=(price - close) / close * 100, day_volume=rng.randrange(10**4, 10**8),
        day_high=price * 1.01, day_low=price * 0.99, change=price - close,
        short_name="SOME COMPANY LIMITED", open_price=close * 1.001, previous_close=close,
        price_hint=2,
    )  # fmt: skip


def _crypto(rng: random.Random) -> PricingData:
    volume = rng.randrange(10**9, 10**11)
    price = rng.uniform(50_000, 100_000)
    return PricingData(
        id="BTC-USD", price=price, time=1_736_509_140_000, currency="USD", exchange="CCC",
        quote_type=41, market_hours=1, change_percent=1.53, day_volume=volume,
        day_high=price * 1.01, day_low=price * 0.98, change=1431.89, open_price=price * 0.985,
        last_size=volume, price_hint=2, vol_24hr=volume, vol_all_currencies=volume,
        from_currency="BTC", circulating_supply=19_808_172.0, market_cap=price * 19_808_172.0,
    )  # fmt: skip


def cases() -> dict[str, list[PricingData]]:
    rng = random.Random(20260715)
    return {
        "equity (16 fields, 99 B)": [_equity(rng) for _ in range(500)],
        "crypto (20 fields, 129 B)": [_crypto(rng) for _ in range(500)],
    }


def yfinance_decoder() -> Any:
    if importlib.util.find_spec("yfinance") is None:
        print("bench_yahoo_decode: yfinance not installed; reporting ours only", file=sys.stderr)
        return None
    from yfinance.live import BaseWebSocket

    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    return BaseWebSocket(url="ws://127.0.0.1:9/", verbose=False)._decode_message


def run() -> list[Result]:
    reference_decode = yfinance_decoder()
    rows: list[Result] = []
    for name, messages in cases().items():
        texts = [base64.b64encode(encode_pricing(m)).decode() for m in messages]
        frames = [encode_frame(m) for m in messages]
        assert all(decode_frame(f, TS_RECV).tick is not None for f in frames)
        reference = None
        if reference_decode is not None:
            decode = reference_decode
            assert all("error" not in decode(t) for t in texts)

            def theirs(texts: list[str] = texts, decode: Any = decode) -> None:
                for text in texts:
                    decode(text)

            reference = result(f"{name}: yfinance 1.7.0 _decode_message (reference)",
                               measure(theirs, ops_per_call=len(texts)))  # fmt: skip
            rows.append(reference)

        def to_struct(texts: list[str] = texts) -> None:
            for text in texts:
                decode_base64(text)

        def to_tick(frames: list[str] = frames) -> None:
            for frame in frames:
                decode_frame(frame, TS_RECV)

        rows.append(result(f"{name}: marketpulse base64 → PricingData",
                           measure(to_struct, ops_per_call=len(texts)), reference))  # fmt: skip
        rows.append(result(f"{name}: marketpulse envelope → Tick",
                           measure(to_tick, ops_per_call=len(frames)), reference))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table("yahoo_decode", run())

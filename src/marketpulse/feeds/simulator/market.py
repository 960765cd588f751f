"""The simulated market: a pure, synchronous, seeded generator of ticks.

Everything here is a function of the seed, the universe, the subscriptions and the ``now_ns``
values passed in, so tests and benchmarks drive it directly and get the same ticks every run;
the asyncio connection only adds pacing. Every non-index tick is a trade, so ``ltq`` is
exactly the growth of the cumulative ``volume``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Final

from marketpulse.feeds.simulator.book import Book
from marketpulse.feeds.simulator.trading_calendar import next_ist_midnight_ns
from marketpulse.feeds.simulator.universe import Universe
from marketpulse.model import TICK_FIELDS, DepthLevel, Mode, Tick, price_change

SOURCE: Final = "sim"

# Wide ticks are built positionally (see _trade_tick); this is the order that relies on.
_POSITIONAL: Final = (
    "source", "token", "exchange", "mode", "ltp", "symbol",
    "ltq", "atp", "volume", "total_buy_qty", "total_sell_qty",
    "open", "high", "low", "close", "change", "change_pct",
    "oi", "oi_day_high", "oi_day_low", "upper_circuit", "lower_circuit", "high_52w", "low_52w",
    "ts_exchange", "ts_last_trade", "ts_recv", "bids", "asks",
)  # fmt: skip
if TICK_FIELDS[: len(_POSITIONAL)] != _POSITIONAL:
    raise ImportError("marketpulse.model.Tick fields moved; update the simulator's _POSITIONAL")

_LTP, _QUOTE, _FULL = 0, 1, 2
_MODE_CODE: Final = {Mode.LTP: _LTP, Mode.QUOTE: _QUOTE, Mode.FULL: _FULL}
_MODE_NAME: Final = (Mode.LTP.value, Mode.QUOTE.value, Mode.FULL.value)


class SimulatedMarket:
    """Seeded market state plus the set of instruments that produce ticks, in which mode.

    Two random streams: one moves the market (instrument choice, price, trade size, order
    pressure, open interest) and one draws the order book, so the market evolves the same way
    whichever modes are subscribed.
    """

    def __init__(self, universe: Universe, seed: int = 42) -> None:
        self.universe = universe
        self.seed = seed
        self._rng = random.Random(seed)
        self._depth_rng = random.Random(f"{seed}:depth")
        self._books = {spec.token: Book(spec, self._rng) for spec in universe.specs}
        self._subscriptions: dict[str, int] = {}
        self._active: list[tuple[Book, int]] = []
        self._day_end_ns = 0

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, tokens: Iterable[str], mode: Mode) -> list[str]:
        """Stream ``tokens`` in ``mode``; returns the tokens the universe does not know."""
        code = _MODE_CODE[Mode(mode)]
        unknown: list[str] = []
        for token in tokens:
            if token in self._books:
                self._subscriptions[token] = code
            else:
                unknown.append(token)
        self._rebuild()
        return unknown

    def unsubscribe(self, tokens: Iterable[str]) -> None:
        for token in tokens:
            self._subscriptions.pop(token, None)
        self._rebuild()

    def unsubscribe_all(self) -> None:
        self._subscriptions.clear()
        self._rebuild()

    @property
    def subscribed(self) -> int:
        """How many instruments produce ticks (cheap, unlike :attr:`subscriptions`)."""
        return len(self._active)

    @property
    def subscriptions(self) -> dict[str, Mode]:
        return {token: Mode(_MODE_NAME[code]) for token, code in self._subscriptions.items()}

    def _rebuild(self) -> None:
        self._active = [(self._books[t], code) for t, code in self._subscriptions.items()]

    # ------------------------------------------------------------------ generation

    def generate(self, count: int, now_ns: int) -> list[Tick]:
        """The next ``count`` ticks, stamped ``now_ns`` (epoch ns); [] with no subscriptions.

        Instruments are drawn uniformly at random from the subscriptions, so a batch can hold
        several ticks of one instrument, as real feeds' frames do.
        """
        active = self._active
        if count <= 0 or not active:
            return []
        if now_ns >= self._day_end_ns:
            if self._day_end_ns:
                for book in self._books.values():
                    book.roll_day()
            self._day_end_ns = next_ist_midnight_ns(now_ns)
        ts_ms = now_ns // 1_000_000
        rand = self._rng.random
        bits = self._rng.getrandbits
        depth_bits = self._depth_rng.getrandbits
        n = len(active)
        ticks: list[Tick] = []
        append = ticks.append
        for _ in range(count):
            book, mode = active[int(rand() * n)]
            move = int(rand() * book.span) - book.half
            p = book.p + move
            if p > book.band_hi or p < book.band_lo:
                p = min(max(book.p - move, book.band_lo), book.band_hi)
            book.p = p
            ltp = p * book.num / book.den
            if p > book.high_p:
                book.high_p = p
                book.high = ltp
            elif p < book.low_p:
                book.low_p = p
                book.low = ltp
            if book.is_index:
                append(_index_tick(book, mode, ltp, ts_ms, now_ns))
            else:
                append(_trade_tick(book, mode, ltp, ts_ms, now_ns, rand, bits, depth_bits))
        return ticks


def _index_tick(book: Book, mode: int, ltp: float, ts_ms: int, now_ns: int) -> Tick:
    """Indices are computed, not traded: no volume, depth or last-trade time."""
    if mode == _LTP:
        return Tick(
            SOURCE, book.token, book.exchange, "ltp", ltp,
            symbol=book.symbol, ts_exchange=ts_ms, ts_recv=now_ns,
        )  # fmt: skip
    change, change_pct = price_change(ltp, book.close)
    # Positional, in _POSITIONAL order: several times cheaper than keywords for a wide tick.
    return Tick(
        SOURCE, book.token, book.exchange, _MODE_NAME[mode], ltp, book.symbol,
        None, None, None, None, None,  # ltq, atp, volume, total_buy_qty, total_sell_qty
        book.open, book.high, book.low, book.close, change, change_pct,
        None, None, None, None, None, None, None,  # oi .. low_52w
        ts_exchange=ts_ms, ts_recv=now_ns,
    )  # fmt: skip


def _trade_tick(
    book: Book,
    mode: int,
    ltp: float,
    ts_ms: int,
    now_ns: int,
    rand: Callable[[], float],
    bits: Callable[[int], int],
    depth_bits: Callable[[int], int],
) -> Tick:
    """A trade: ``ltq`` is added to the day volume, order pressure and open interest drift."""
    lot = book.lot
    r = rand()
    ltq = lot * (1 + int(r * r * r * book.max_lots))
    volume = book.volume = book.volume + ltq
    turnover = book.turnover = book.turnover + ltq * ltp
    # Resting quantity drifts with order pressure and is pulled back towards its mean; one
    # 16-bit draw moves both sides.
    drift = bits(16)
    step = book.pressure
    tbq = book.tbq + ((drift & 255) - 128) * step + (book.tbq_mean - book.tbq) // 64
    tsq = book.tsq + ((drift >> 8) - 128) * step + (book.tbq_mean - book.tsq) // 64
    book.tbq = tbq = tbq if tbq > lot else lot
    book.tsq = tsq = tsq if tsq > lot else lot
    oi = book.oi
    oi_high = oi_low = None
    if oi is not None:
        oi += lot * int((rand() - 0.5) * 41.0)
        book.oi = oi = oi if oi > 0 else 0
        if oi > book.oi_high:
            book.oi_high = oi
        elif oi < book.oi_low:
            book.oi_low = oi
        oi_high, oi_low = book.oi_high, book.oi_low
    if mode == _LTP:
        return Tick(
            SOURCE, book.token, book.exchange, "ltp", ltp,
            symbol=book.symbol, ts_exchange=ts_ms, ts_last_trade=ts_ms, ts_recv=now_ns,
        )  # fmt: skip
    bids = asks = None
    if mode == _FULL:
        bids, asks = _depth(book, depth_bits)
    change, change_pct = price_change(ltp, book.close)
    atp = int(turnover * 100.0 / volume + 0.5) / 100.0  # round(x, 2) costs twice as much
    return Tick(
        SOURCE, book.token, book.exchange, _MODE_NAME[mode], ltp, book.symbol,
        ltq, atp, volume, tbq, tsq,
        book.open, book.high, book.low, book.close, change, change_pct,
        oi, oi_high, oi_low, None, None, None, None,  # oi .. low_52w
        ts_ms, ts_ms, now_ns, bids, asks,
    )  # fmt: skip


def _depth_shapes(size: int = 256) -> tuple[tuple[int, int], ...]:
    """(size in units, orders) pairs for book levels: mostly small, now and then large.

    Levels are drawn from this fixed table by random bits instead of being computed from
    random floats, which is several times cheaper on the hot path.
    """
    rng = random.Random("marketpulse.sim.depth-shapes")
    shapes = []
    for _ in range(size):
        r = rng.random()
        units = 1 + int(r * r * 127)
        shapes.append((units, 1 + int(rng.random() * min(units, 40))))
    return tuple(shapes)


_SHAPES: Final = _depth_shapes()


def _depth(
    book: Book, depth_bits: Callable[[int], int]
) -> tuple[list[DepthLevel], list[DepthLevel]]:
    """Five levels a side around the last trade, which hit either the best bid or best ask."""
    bits = depth_bits(43)
    bid = book.p - (bits & 1)  # trade at the best ask (bid one tick below) or the best bid
    ask = bid + (2 if bits & 6 == 0 else 1)  # a two-tick spread a quarter of the time
    num, den, unit = book.num, book.den, book.depth_unit
    return (
        _side(bid, -1, bits >> 3, num, den, unit),
        _side(ask, 1, depth_bits(40), num, den, unit),
    )


def _side(start: int, step: int, bits: int, num: int, den: int, unit: int) -> list[DepthLevel]:
    """Five levels from ``start`` (ticks) outwards, sized by five bytes of ``bits``."""
    s0 = _SHAPES[bits & 255]
    s1 = _SHAPES[bits >> 8 & 255]
    s2 = _SHAPES[bits >> 16 & 255]
    s3 = _SHAPES[bits >> 24 & 255]
    s4 = _SHAPES[bits >> 32 & 255]
    return [
        DepthLevel(start * num / den, s0[0] * unit, s0[1]),
        DepthLevel((start + step) * num / den, s1[0] * unit, s1[1]),
        DepthLevel((start + 2 * step) * num / den, s2[0] * unit, s2[1]),
        DepthLevel((start + 3 * step) * num / den, s3[0] * unit, s3[1]),
        DepthLevel((start + 4 * step) * num / den, s4[0] * unit, s4[1]),
    ]

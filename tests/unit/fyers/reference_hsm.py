"""The Fyers merge-and-tick logic as it was before the decoder merged straight from the bytes.

Kept only as the reference of the differential tests: decode the records into objects with
``wire.decode_server_frame``, merge each into a per-topic raw list, build every ``Tick`` by
keyword from scaled look-ups. Slow and obviously right; the fast decoder must match it tick for
tick and value for value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketpulse.feeds.fyers import wire
from marketpulse.feeds.fyers.wire import (
    ASK,
    ASK_SIZE,
    ATP,
    BID,
    BID_SIZE,
    CLOSE,
    FEED_TIME,
    HIGH,
    I_CLOSE,
    I_FEED_TIME,
    I_HIGH,
    I_LOW,
    I_LTP,
    I_OPEN,
    INDEX_EXCHANGE,
    LOW,
    LOWER_CKT,
    LTP,
    LTQ,
    LTT,
    NO_VALUE,
    OI,
    OPEN,
    SEGMENT_EXCHANGE,
    SOURCE,
    TBQ,
    TSQ,
    UPPER_CKT,
    VOLUME,
    YHIGH,
    YLOW,
)  # fmt: skip
from marketpulse.model import DepthLevel, Mode, Tick, price_change


class RefTopic:
    def __init__(self, snapshot: wire.Snapshot, label: str) -> None:
        self.topic = snapshot.topic
        self.kind = wire.topic_kind(snapshot.topic)
        self.values = list(snapshot.values)
        self.divisor = float(10**snapshot.precision * (snapshot.multiplier or 1))
        segment = snapshot.exchange or wire.topic_segment(snapshot.topic)
        table = INDEX_EXCHANGE if self.kind == "if" else SEGMENT_EXCHANGE
        self.exchange = table.get(segment, SEGMENT_EXCHANGE.get(segment, segment.upper()))
        self.label = label

    def price(self, position: int) -> float | None:
        if position >= len(self.values):
            return None
        raw = self.values[position]
        return None if raw == NO_VALUE else raw / self.divisor

    def number(self, position: int) -> int | None:
        if position >= len(self.values):
            return None
        raw = self.values[position]
        return None if raw == NO_VALUE else raw

    def millis(self, position: int) -> int | None:
        raw = self.number(position)
        return None if raw is None else raw * 1000


@dataclass
class RefState:
    labels: dict[str, str] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    topics: dict[int, RefTopic] = field(default_factory=dict)
    scrips: dict[str, RefTopic] = field(default_factory=dict)
    depths: dict[str, RefTopic] = field(default_factory=dict)
    lite: bool = False


def decode(data: bytes, ts_recv: int, state: RefState) -> tuple[list[Tick], int, list[str]]:
    """(ticks, skipped, errors) of one data frame, the old way."""
    try:
        message = wire.decode_server_frame(data)
    except wire.WireError as exc:
        return [], 1, [str(exc)]
    if not isinstance(message, wire.DataMessage):
        return [], 0, []
    skipped, errors = message.skipped, [] if message.error is None else [message.error]
    ticks: list[Tick] = []
    for record in message.records:
        if isinstance(record, wire.Update):
            topic = state.topics.get(record.topic_id)
            if topic is None:
                skipped += 1
                continue
            values, changed = topic.values, False
            for i, raw in enumerate(record.values):
                if raw != NO_VALUE:
                    if i >= len(values):
                        values.extend([NO_VALUE] * (i + 1 - len(values)))
                    if values[i] != raw:
                        values[i] = raw
                        changed = True
            if not changed:
                continue
        elif isinstance(record, wire.Lite):
            topic = state.topics.get(record.topic_id)
            if topic is None:
                skipped += 1
                continue
            if topic.values and topic.values[0] == record.ltp:
                continue
            if topic.values:
                topic.values[0] = record.ltp
            else:
                topic.values.append(record.ltp)
            state.lite = True
        else:
            label = state.labels.get(record.topic) or wire.symbol_from_snapshot(record)
            topic = RefTopic(record, label)
            state.topics[record.topic_id] = topic
            if topic.kind == "dp":
                state.depths[label] = topic
            elif topic.kind == "sf":
                state.scrips[label] = topic
        tick = _tick(topic, state, ts_recv)
        if tick is not None:
            ticks.append(tick)
    return ticks, skipped, errors


def _mode_of(state: RefState, symbol: str) -> str:
    if state.lite:
        return Mode.LTP.value
    mode = state.modes.get(symbol)
    if mode is not None:
        return mode
    return Mode.FULL.value if symbol in state.depths else Mode.QUOTE.value


def _tick(topic: RefTopic, state: RefState, ts_recv: int) -> Tick | None:
    symbol = topic.label
    if topic.kind == "if":
        ltp = topic.price(I_LTP)
        if ltp is None:
            return None
        if _mode_of(state, symbol) == Mode.LTP.value:
            return Tick(SOURCE, symbol, topic.exchange, Mode.LTP.value, ltp, ts_recv=ts_recv)
        close = topic.price(I_CLOSE)
        change, change_pct = price_change(ltp, close)
        return Tick(SOURCE, symbol, topic.exchange, Mode.QUOTE.value, ltp,
                    open=topic.price(I_OPEN), high=topic.price(I_HIGH), low=topic.price(I_LOW),
                    close=close, change=change, change_pct=change_pct,
                    ts_exchange=topic.millis(I_FEED_TIME), ts_recv=ts_recv)  # fmt: skip
    mode = _mode_of(state, symbol)
    if topic.kind == "dp":
        if mode != Mode.FULL.value:
            return None
        scrip = state.scrips.get(symbol)
        if scrip is None:
            return None
        return _scrip_tick(scrip, mode, ts_recv, topic)
    return _scrip_tick(topic, mode, ts_recv, state.depths.get(symbol))


def _scrip_tick(topic: RefTopic, mode: str, ts_recv: int, depth: RefTopic | None) -> Tick | None:
    ltp = topic.price(LTP)
    if ltp is None:
        return None
    if mode == Mode.LTP.value:
        return Tick(SOURCE, topic.label, topic.exchange, mode, ltp,
                    ts_last_trade=topic.millis(LTT), ts_exchange=topic.millis(FEED_TIME),
                    ts_recv=ts_recv)  # fmt: skip
    close = topic.price(CLOSE)
    change, change_pct = price_change(ltp, close)
    bids = asks = None
    if mode == Mode.FULL.value:
        if depth is not None:
            bids, asks = [], []
            for i in range(wire.DEPTH_LEVELS):
                bid = depth.price(i)
                if bid is not None:
                    bids.append(DepthLevel(bid, depth.number(10 + i) or 0,
                                           depth.number(20 + i) or 0))  # fmt: skip
                ask = depth.price(5 + i)
                if ask is not None:
                    asks.append(DepthLevel(ask, depth.number(15 + i) or 0,
                                           depth.number(25 + i) or 0))  # fmt: skip
        else:
            bid, ask = topic.price(BID), topic.price(ASK)
            bids = [DepthLevel(bid, topic.number(BID_SIZE) or 0)] if bid is not None else []
            asks = [DepthLevel(ask, topic.number(ASK_SIZE) or 0)] if ask is not None else []
    return Tick(
        SOURCE, topic.label, topic.exchange, mode, ltp,
        ltq=topic.number(LTQ), atp=topic.price(ATP), volume=topic.number(VOLUME),
        total_buy_qty=topic.number(TBQ), total_sell_qty=topic.number(TSQ),
        open=topic.price(OPEN), high=topic.price(HIGH), low=topic.price(LOW), close=close,
        change=change, change_pct=change_pct, oi=topic.number(OI),
        upper_circuit=topic.price(UPPER_CKT), lower_circuit=topic.price(LOWER_CKT),
        high_52w=topic.price(YHIGH), low_52w=topic.price(YLOW),
        ts_exchange=topic.millis(FEED_TIME), ts_last_trade=topic.millis(LTT), ts_recv=ts_recv,
        bids=bids, asks=asks,
    )  # fmt: skip

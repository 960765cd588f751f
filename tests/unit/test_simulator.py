"""The simulator feed: deterministic, realistic-looking ticks, market hours, pacing, contract."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedConnectionError, FeedSupervisor, ReconnectPolicy
from marketpulse.feeds.simulator import (
    IST,
    SimulatedMarket,
    SimulatorAdapter,
    Universe,
    default_universe,
    monthly_expiry,
    session_open,
    upcoming_monthly_expiries,
)
from marketpulse.model import (
    Exchange,
    Mode,
    Tick,
    decode_tick,
    encode_tick,
    normalize_symbol,
    parse_derivative_name,
    price_change,
)

TODAY = date(2025, 12, 15)  # a Monday


def ist(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of a December 2025 instant given in India time."""
    return datetime(2025, 12, day, hour, minute, second, tzinfo=IST).timestamp()


MONDAY_11 = ist(15, 11, 0)
MONDAY_20 = ist(15, 20, 0)
SATURDAY_11 = ist(20, 11, 0)
NOW_NS = int(MONDAY_11 * 1e9)


@pytest.fixture(scope="module")
def universe() -> Universe:
    return default_universe(TODAY, extra_instruments=20)


def market(universe: Universe, seed: int = 7, mode: Mode = Mode.FULL) -> SimulatedMarket:
    m = SimulatedMarket(universe, seed)
    m.subscribe(universe.tokens, mode)
    return m


def run(m: SimulatedMarket, batches: int = 50, size: int = 200) -> list[Tick]:
    ticks: list[Tick] = []
    for i in range(batches):
        ticks += m.generate(size, NOW_NS + i * 20_000_000)
    return ticks


def on_grid(price: float, tick_size: float) -> bool:
    steps = price / tick_size
    return abs(steps - round(steps)) < 1e-6 and round(price, 2) == price


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_tick_sequence(universe: Universe) -> None:
    first = [encode_tick(t) for t in run(market(universe, seed=11))]
    second = [encode_tick(t) for t in run(market(universe, seed=11))]
    assert first == second


def test_different_seed_gives_different_sequence(universe: Universe) -> None:
    a = [encode_tick(t) for t in run(market(universe, seed=1), batches=2)]
    b = [encode_tick(t) for t in run(market(universe, seed=2), batches=2)]
    assert a != b


def test_batch_boundaries_do_not_change_the_sequence(universe: Universe) -> None:
    whole = market(universe).generate(300, NOW_NS)
    m = market(universe)
    split = m.generate(120, NOW_NS) + m.generate(180, NOW_NS)
    assert [encode_tick(t) for t in whole] == [encode_tick(t) for t in split]


def test_market_path_does_not_depend_on_the_modes_watched(universe: Universe) -> None:
    full = run(market(universe, mode=Mode.FULL), batches=5)
    ltp = run(market(universe, mode=Mode.LTP), batches=5)
    assert [(t.token, t.ltp) for t in full] == [(t.token, t.ltp) for t in ltp]
    quote = run(market(universe, mode=Mode.QUOTE), batches=5)
    assert [t.total_buy_qty for t in full] == [t.total_buy_qty for t in quote]


# ---------------------------------------------------------------------------- invariants


def assert_invariants(universe: Universe, ticks: Sequence[Tick]) -> None:
    volumes: dict[str, int] = {}
    for t in ticks:
        spec = universe.spec(t.token)
        tick_size = spec.instrument.tick_size
        assert t.source == "sim"
        assert t.symbol == spec.symbol
        assert t.exchange == spec.instrument.exchange.value
        assert t.ltp > 0, t
        assert on_grid(t.ltp, tick_size), t
        if t.mode == "ltp":
            continue
        assert t.high is not None
        assert t.low is not None
        assert t.open is not None
        assert t.high >= t.ltp >= t.low > 0, t
        assert t.high >= t.open >= t.low, t
        assert t.close is not None
        assert on_grid(t.close, tick_size)
        assert (t.change, t.change_pct) == price_change(t.ltp, t.close)
        if spec.is_index:
            assert t.volume is None
            assert t.bids is None
            assert t.ltq is None
            continue
        assert t.volume is not None
        assert t.ltq is not None
        assert t.ltq > 0
        if t.token in volumes:
            assert t.volume - volumes[t.token] == t.ltq, t
        assert t.volume >= t.ltq
        volumes[t.token] = t.volume
        assert t.atp is not None
        assert t.low <= t.atp <= t.high
        assert t.ltq % spec.instrument.lot_size == 0
        if t.oi is not None:
            assert t.oi_day_high is not None
            assert t.oi_day_low is not None
            assert t.oi_day_high >= t.oi >= t.oi_day_low >= 0
        if t.mode == "full":
            assert_depth(t, tick_size)


def assert_depth(t: Tick, tick_size: float) -> None:
    assert t.bids is not None
    assert t.asks is not None
    assert len(t.bids) == len(t.asks) == 5
    bid_prices = [level.price for level in t.bids]
    ask_prices = [level.price for level in t.asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert len(set(bid_prices)) == 5
    assert ask_prices == sorted(ask_prices)
    assert len(set(ask_prices)) == 5
    assert bid_prices[0] <= t.ltp <= ask_prices[0]
    assert bid_prices[0] < ask_prices[0]
    for level in (*t.bids, *t.asks):
        assert level.price > 0
        assert on_grid(level.price, tick_size)
        assert 1 <= level.orders <= level.qty


def test_prices_stay_positive_and_on_the_tick_grid(universe: Universe) -> None:
    ticks = run(market(universe), batches=100)
    assert_invariants(universe, ticks)
    sizes = {universe.spec(t.token).instrument.tick_size for t in ticks}
    assert sizes == {0.01, 0.05}  # both NSE cash tick sizes are exercised


def test_high_ltp_low_volume_and_depth_invariants_hold_over_a_long_run(
    universe: Universe,
) -> None:
    m = market(universe, seed=3)
    m.subscribe(universe.tokens[:5], Mode.QUOTE)
    m.subscribe(universe.tokens[5:10], Mode.LTP)
    assert_invariants(universe, run(m, batches=200, size=250))


def test_volume_is_monotonic_and_ltq_is_its_increment(universe: Universe) -> None:
    token = universe.token_of("RELIANCE.NSE")
    m = SimulatedMarket(universe, 5)
    m.subscribe([token], Mode.QUOTE)
    ticks = m.generate(500, NOW_NS)
    for prev, tick in itertools.pairwise(ticks):
        assert tick.volume is not None
        assert prev.volume is not None
        assert tick.ltq is not None
        assert tick.ltq > 0
        assert tick.volume - prev.volume == tick.ltq


def test_prices_walk_rather_than_stand_still(universe: Universe) -> None:
    m = SimulatedMarket(universe, 5)
    m.subscribe([universe.token_of("NIFTY50.NSE_INDEX")], Mode.LTP)
    assert len({t.ltp for t in m.generate(200, NOW_NS)}) > 20


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**63),
    mode=st.sampled_from(list(Mode)),
    size=st.integers(min_value=1, max_value=400),
)
def test_invariants_hold_for_any_seed(seed: int, mode: Mode, size: int) -> None:
    universe = default_universe(TODAY, extra_instruments=5)
    m = market(universe, seed=seed, mode=mode)
    assert_invariants(universe, run(m, batches=8, size=size))


# ---------------------------------------------------------------------------- fields


def test_modes_carry_the_right_fields(universe: Universe) -> None:
    reliance = universe.token_of("RELIANCE.NSE")
    for mode, present, absent in (
        (Mode.LTP, {"ltp", "ts_exchange", "ts_last_trade"}, {"volume", "open", "bids"}),
        (Mode.QUOTE, {"open", "high", "low", "close", "volume", "atp", "ltq", "change"}, {"bids"}),
        (Mode.FULL, {"volume", "total_buy_qty", "total_sell_qty", "bids", "asks"}, {"oi"}),
    ):
        m = SimulatedMarket(universe, 1)
        m.subscribe([reliance], mode)
        tick = m.generate(1, NOW_NS)[0]
        fields = {name for name in tick.__struct_fields__ if getattr(tick, name) is not None}
        assert tick.mode == mode.value
        assert present <= fields, mode
        assert not absent & fields, mode
    m = SimulatedMarket(universe, 1)
    m.subscribe([reliance], Mode.LTP)
    ltp_fields = {n for n in Tick.__struct_fields__ if getattr(m.generate(1, NOW_NS)[0], n)}
    assert ltp_fields == {
        "source", "token", "exchange", "mode", "ltp", "symbol",
        "ts_exchange", "ts_last_trade", "ts_recv",
    }  # fmt: skip


def test_indices_have_no_volume_or_depth_and_futures_carry_open_interest(
    universe: Universe,
) -> None:
    nifty = universe.token_of("NIFTY50.NSE_INDEX")
    future = next(s for s in universe.specs if s.instrument.instrument_type == "FUT")
    m = SimulatedMarket(universe, 1)
    m.subscribe([nifty, future.token], Mode.FULL)
    ticks = {t.token: t for t in m.generate(50, NOW_NS)}
    index, fut = ticks[nifty], ticks[future.token]
    assert index.volume is None
    assert index.bids is None
    assert index.ts_last_trade is None
    assert index.open is not None
    assert index.change is not None
    assert fut.oi is not None
    assert fut.oi_day_high is not None
    assert fut.oi_day_low is not None
    assert fut.bids is not None
    assert fut.ltq is not None
    assert fut.ltq % future.instrument.lot_size == 0


def test_ticks_round_trip_through_the_canonical_json(universe: Universe) -> None:
    for tick in run(market(universe), batches=2):
        assert decode_tick(encode_tick(tick)) == tick


def test_timestamps_come_from_the_clock_in_the_canonical_units(universe: Universe) -> None:
    tick = market(universe).generate(1, NOW_NS)[0]
    assert tick.ts_recv == NOW_NS
    assert tick.ts_exchange == NOW_NS // 1_000_000 == tick.ts_last_trade


def test_a_new_trading_day_resets_volume_and_moves_the_close(universe: Universe) -> None:
    token = universe.token_of("INFY.NSE")
    m = SimulatedMarket(universe, 9)
    m.subscribe([token], Mode.QUOTE)
    last = m.generate(100, NOW_NS)[-1]
    first = m.generate(1, NOW_NS + 86_400 * 10**9)[0]
    assert first.close == last.ltp
    assert first.volume == first.ltq
    assert first.open == last.ltp


# ---------------------------------------------------------------------------- subscriptions


def test_unsubscribe_stops_an_instruments_ticks(universe: Universe) -> None:
    m = market(universe, mode=Mode.LTP)
    gone = universe.token_of("TCS.NSE")
    m.unsubscribe([gone])
    tokens = {t.token for t in m.generate(5000, NOW_NS)}
    assert gone not in tokens
    assert len(tokens) == len(universe) - 1
    m.unsubscribe_all()
    assert m.generate(100, NOW_NS) == []


def test_unknown_tokens_are_reported_not_subscribed(universe: Universe) -> None:
    m = SimulatedMarket(universe, 1)
    assert m.subscribe(["no-such-token", universe.token_of("ITC.NSE")], Mode.LTP) == [
        "no-such-token"
    ]
    assert m.subscriptions == {universe.token_of("ITC.NSE"): Mode.LTP}


# ---------------------------------------------------------------------------- universe


def test_default_universe_is_nifty50_indices_and_index_futures(universe: Universe) -> None:
    by_type: dict[str, list[str]] = {}
    for spec in universe.specs:
        by_type.setdefault(spec.instrument.instrument_type, []).append(spec.symbol)
    assert len(by_type["EQ"]) == 50 + 20
    assert {"RELIANCE.NSE", "HDFCBANK.NSE", "M&M.NSE", "SIM0001.NSE", "SIM0020.NSE"} <= set(
        by_type["EQ"]
    )
    assert by_type["INDEX"] == ["NIFTY50.NSE_INDEX", "NIFTYBANK.NSE_INDEX", "SENSEX.BSE_INDEX"]
    assert by_type["FUT"] == [
        "NIFTY30DEC25FUT.NFO",
        "NIFTY27JAN26FUT.NFO",
        "BANKNIFTY30DEC25FUT.NFO",
        "BANKNIFTY27JAN26FUT.NFO",
    ]
    for symbol in by_type["FUT"]:
        name, _, exchange = symbol.partition(".")
        parsed = parse_derivative_name(name)
        assert parsed is not None
        assert parsed.instrument_type == "FUT"
        assert exchange == Exchange.NFO
        assert parsed.expiry.weekday() == 1


def test_symbols_are_canonical_and_tokens_unique_numeric_and_stable(universe: Universe) -> None:
    assert len(set(universe.tokens)) == len(universe)
    for spec in universe.specs:
        assert spec.token.isdigit()
        assert normalize_symbol(spec.symbol) == spec.symbol
        assert universe.symbol_of(spec.token) == spec.symbol
        assert universe.token_of(spec.symbol) == spec.token
        assert spec.close > 0
        assert on_grid(spec.close, spec.instrument.tick_size)
    later = default_universe(date(2026, 3, 2), extra_instruments=20)
    assert later.token_of("RELIANCE.NSE") == universe.token_of("RELIANCE.NSE")
    assert later.token_of("SIM0007.NSE") == universe.token_of("SIM0007.NSE")


def test_extra_instruments_scale_the_universe_to_thousands() -> None:
    big = default_universe(TODAY, extra_instruments=10_000)
    assert len(big) == 57 + 10_000
    assert big.symbol_of(big.tokens[-1]) == "SIM10000.NSE"


def test_monthly_expiry_is_the_last_tuesday_from_september_2025() -> None:
    assert monthly_expiry(2025, 12) == date(2025, 12, 30)
    assert monthly_expiry(2026, 1) == date(2026, 1, 27)
    assert monthly_expiry(2025, 8) == date(2025, 8, 28)  # still Thursday
    assert upcoming_monthly_expiries(date(2025, 12, 30), 2) == [
        date(2025, 12, 30),
        date(2026, 1, 27),
    ]
    assert upcoming_monthly_expiries(date(2025, 12, 31), 2) == [
        date(2026, 1, 27),
        date(2026, 2, 24),
    ]


# ---------------------------------------------------------------------------- market hours


def test_session_is_weekdays_0915_to_1530_ist() -> None:
    assert session_open(MONDAY_11)
    assert session_open(ist(15, 9, 15))
    assert not session_open(ist(15, 9, 14, 59))
    assert not session_open(ist(15, 15, 30))
    assert not session_open(MONDAY_20)
    assert not session_open(SATURDAY_11)
    assert SimulatorAdapter(clock=lambda: MONDAY_11).market_open(SATURDAY_11) is False
    assert SimulatorAdapter(always_open=True, clock=lambda: MONDAY_11).market_open(SATURDAY_11)


@pytest.mark.parametrize("when", [MONDAY_20, SATURDAY_11], ids=["20:00 IST", "saturday"])
async def test_closed_market_produces_only_heartbeats(when: float) -> None:
    adapter = SimulatorAdapter(clock=lambda: when, ticks_per_second=10_000, heartbeat_seconds=0.02)
    connection = await adapter.connect(None)
    await connection.subscribe(adapter.universe.tokens, Mode.FULL)
    started = time.monotonic()
    batches = [await connection.receive() for _ in range(5)]
    assert batches == [[]] * 5
    assert time.monotonic() - started < 2.0  # heartbeats arrive; receive does not block
    await connection.close()


async def test_always_open_overrides_market_hours() -> None:
    adapter = SimulatorAdapter(clock=lambda: SATURDAY_11, always_open=True, ticks_per_second=1000)
    connection = await adapter.connect(None)
    await connection.subscribe(adapter.universe.tokens, Mode.QUOTE)
    ticks: list[Tick] = []
    for _ in range(20):
        ticks += await connection.receive()
    assert ticks
    assert all(t.ts_recv == int(SATURDAY_11 * 1e9) for t in ticks)
    await connection.close()


# ---------------------------------------------------------------------------- the async feed


async def test_rate_is_roughly_honoured_through_the_connection() -> None:
    rate = 400.0
    adapter = SimulatorAdapter(always_open=True, ticks_per_second=rate)
    connection = await adapter.connect(None)
    await connection.subscribe(adapter.universe.tokens, Mode.FULL)
    received = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        received += len(await connection.receive())
    elapsed = time.monotonic() - started
    assert 0.5 * rate * elapsed <= received <= 1.5 * rate * elapsed
    await connection.close()


async def test_unsubscribe_through_the_connection_stops_ticks() -> None:
    adapter = SimulatorAdapter(always_open=True, ticks_per_second=5000)
    connection = await adapter.connect(None)
    keep, drop = adapter.universe.token_of("SBIN.NSE"), adapter.universe.token_of("ITC.NSE")
    await connection.subscribe([keep, drop], Mode.LTP)
    await connection.unsubscribe([drop])
    tokens: set[str] = set()
    for _ in range(10):
        tokens |= {t.token for t in await connection.receive()}
    assert tokens == {keep}
    await connection.close()


async def test_a_new_connection_starts_empty_and_the_market_carries_on() -> None:
    adapter = SimulatorAdapter(always_open=True, ticks_per_second=2000)
    token = adapter.universe.token_of("INFY.NSE")
    first = await adapter.connect(None)
    await first.subscribe([token], Mode.QUOTE)
    before: list[Tick] = []
    while not before:
        before = await first.receive()
    await first.close()
    with pytest.raises(FeedConnectionError):
        await first.receive()
    second = await adapter.connect(None)
    assert adapter.market.subscriptions == {}
    await second.subscribe([token], Mode.QUOTE)
    after: list[Tick] = []
    while not after:
        after = await second.receive()
    assert before[-1].volume is not None
    assert after[0].volume is not None
    assert after[0].volume > before[-1].volume  # same trading day, same market
    await second.close()


async def test_runs_under_the_feed_supervisor_delivering_batches_to_a_sink() -> None:
    adapter = SimulatorAdapter(always_open=True, ticks_per_second=2000, seed=3)
    batches: list[list[Tick]] = []
    enough = asyncio.Event()

    async def sink(batch: list[Tick]) -> None:
        batches.append(batch)
        if len(batches) >= 5:
            enough.set()

    supervisor = FeedSupervisor(adapter, sink, ReconnectPolicy(heartbeat_timeout=5.0))
    wanted = [adapter.universe.token_of(s) for s in ("RELIANCE.NSE", "NIFTY50.NSE_INDEX")]
    await supervisor.subscribe(wanted, Mode.FULL)
    task = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(enough.wait(), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ticks = [t for batch in batches for t in batch]
    assert {t.token for t in ticks} == set(wanted)
    assert all(t.source == "sim" and t.mode == "full" for t in ticks)
    assert supervisor.ticks_received >= len(ticks)
    assert supervisor.statuses[0].connects == 1
    assert supervisor.fatal_error is None


def test_adapter_builds_from_settings() -> None:
    s = Settings(
        sim_seed=9, sim_ticks_per_second=1234.0, sim_always_open=True, sim_extra_instruments=3
    )
    adapter = SimulatorAdapter.from_settings(s, clock=lambda: MONDAY_11)
    assert adapter.name == "sim"
    assert adapter.max_instruments_per_connection is None
    assert adapter.market.seed == 9
    assert adapter.ticks_per_second == 1234.0
    assert adapter.always_open
    assert len(adapter.universe) == 57 + 3
    assert "NIFTY30DEC25FUT.NFO" in adapter.universe.symbols.values()

"""The Kite feed against the Kite emulator over loopback, under the real supervisor.

Exact values travel through the whole path (emulator encoder → WebSocket → client → codec);
faults injected by the emulator (drops, silence, token expiry, limits, garbage) must end in a
reconnect with the right subscriptions, or in a clear stop — never in a dead feed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from marketpulse.credentials import CredentialsError
from marketpulse.feeds.base import (
    ConnectionState,
    FeedAuthError,
    FeedConnectionError,
    FeedLimitError,
    FeedSupervisor,
)
from marketpulse.feeds.kite.client import KiteAdapter
from marketpulse.feeds.kite.wire import (
    ErrorMessage,
    encode_frame,
    encode_packet,
    encode_text,
    frame_packets,
)
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import DepthLevel, Mode, Tick
from tests.integration.kite.helpers import (
    CREDENTIALS,
    FAST,
    Collector,
    kite_emulator,
    save_session,
    stop,
    wait_for,
)

T0 = 1_705_293_930  # 2024-01-15 10:15:30 IST
BIDS = [(1525.45, 75, 3), (1525.4, 150, 5), (1525.35, 225, 2), (1525.3, 300, 7), (1525.25, 375, 1)]
ASKS = [(1525.55, 50, 2), (1525.6, 125, 4), (1525.65, 200, 6), (1525.7, 275, 3), (1525.75, 350, 9)]


def infy_full(token: int) -> Tick:
    return Tick(
        source="kite", token=str(token), exchange="NSE", mode="full", ltp=1525.5, ltq=10,
        atp=1523.25, volume=1_234_567, total_buy_qty=50_000, total_sell_qty=60_000,
        open=1510.0, high=1530.0, low=1505.5, close=1512.35, oi=0, oi_day_high=0,
        oi_day_low=0, ts_exchange=T0 * 1000, ts_last_trade=(T0 - 5) * 1000,
        bids=[DepthLevel(*level) for level in BIDS], asks=[DepthLevel(*level) for level in ASKS],
    )  # fmt: skip


def nifty_full(token: int) -> Tick:
    return Tick(
        source="kite", token=str(token), exchange="NSE_INDEX", mode="full", ltp=21500.55,
        open=21450.0, high=21600.0, low=21400.1, close=21550.0, ts_exchange=T0 * 1000,
    )  # fmt: skip


def received(ticks: list[Tick]) -> list[Tick]:
    """Ticks without their receive time (the only value the test cannot know)."""
    assert all(t.ts_recv for t in ticks)
    return [msgspec.structs.replace(t, ts_recv=None) for t in ticks]


async def test_scripted_ticks_arrive_with_exact_values_in_each_subscribed_mode() -> None:
    async with kite_emulator(snapshots=False) as kite:
        infy, nifty = kite.token("NSE:INFY"), kite.token("NSE:NIFTY 50")
        reliance = kite.token("NSE:RELIANCE")
        sink = Collector()
        supervisor = FeedSupervisor(kite.adapter(), sink, FAST)
        await supervisor.subscribe([str(infy)], Mode.FULL)
        await supervisor.subscribe([str(nifty)], Mode.QUOTE)
        await supervisor.subscribe([str(reliance)], Mode.LTP)
        task = asyncio.create_task(supervisor.run())
        want = {infy: "full", nifty: "quote", reliance: "ltp"}
        await wait_for(lambda: kite.emulator.history and kite.emulator.history[0].modes == want)

        second = msgspec.structs.replace(
            infy_full(infy), ltp=1526.0, ltq=5, volume=1_234_572, ts_exchange=(T0 + 1) * 1000
        )
        rel = msgspec.structs.replace(infy_full(reliance), ltp=2950.05)
        kite.emulator.push([infy_full(infy), nifty_full(nifty), rel])
        kite.emulator.push([second])
        await wait_for(lambda: len(sink.ticks) >= 4)
        await stop(task)

    assert received(sink.ticks) == [
        msgspec.structs.replace(infy_full(infy), change=13.15,
                                change_pct=(1525.5 - 1512.35) * 100 / 1512.35),
        Tick(source="kite", token=str(nifty), exchange="NSE_INDEX", mode="quote", ltp=21500.55,
             open=21450.0, high=21600.0, low=21400.1, close=21550.0, change=-49.45,
             change_pct=(21500.55 - 21550.0) * 100 / 21550.0),
        Tick(source="kite", token=str(reliance), exchange="NSE", mode="ltp", ltp=2950.05),
        msgspec.structs.replace(second, change=13.65,
                                change_pct=(1526.0 - 1512.35) * 100 / 1512.35),
    ]  # fmt: skip


async def test_index_tokens_take_their_exchange_from_the_instrument_master() -> None:
    async with kite_emulator(snapshots=False) as kite:
        sensex = kite.token("BSE:SENSEX")
        adapter = kite.adapter(index_exchanges={sensex: "BSE_INDEX"})
        connection = await adapter.connect(CREDENTIALS)
        await connection.subscribe([str(sensex)], Mode.LTP)
        await wait_for(lambda: kite.emulator.history[0].modes == {sensex: "ltp"})
        tick = Tick(
            source="kite", token=str(sensex), exchange="BSE_INDEX", mode="ltp", ltp=85010.25
        )
        kite.emulator.push([tick])
        batch: list[Tick] = []
        while not batch:
            batch = await connection.receive()
        await connection.close()
    assert [(t.exchange, t.ltp) for t in batch] == [("BSE_INDEX", 85010.25)]


async def test_subscribing_sends_subscribe_then_mode_and_the_server_snapshots_at_once() -> None:
    async with kite_emulator() as kite:  # no market: only the subscription snapshots arrive
        infy = kite.token("NSE:INFY")
        connection = await kite.adapter().connect(CREDENTIALS)
        await connection.subscribe([str(infy)], Mode.FULL)
        ticks: list[Tick] = []
        while not any(t.mode == "full" for t in ticks):
            ticks += await connection.receive()
        await connection.unsubscribe([str(infy)])
        await wait_for(lambda: not kite.emulator.history[0].modes)
        await connection.close()
    requests = kite.emulator.history[0].requests
    assert [(r.action, r.tokens, r.mode) for r in requests] == [
        ("subscribe", [infy], None), ("mode", [infy], "full"), ("unsubscribe", [infy], None),
    ]  # fmt: skip
    # New tokens stream in quote until the mode request arrives.
    assert [t.mode for t in ticks] == ["quote", "full"]
    assert ticks[-1].ltp == kite.emulator.last[infy].ltp


async def test_heartbeats_keep_an_idle_connection_alive() -> None:
    async with kite_emulator() as kite:
        adapter = kite.adapter()
        supervisor = FeedSupervisor(adapter, Collector(), FAST)
        task = asyncio.create_task(supervisor.run())  # nothing subscribed: heartbeats only
        await wait_for(lambda: supervisor.connected)
        frames = supervisor.statuses[0].last_frame_at
        await wait_for(lambda: supervisor.statuses[0].last_frame_at != frames)
        await asyncio.sleep(1.5)  # beyond the 1 s heartbeat timeout
        status = supervisor.statuses[0]
        await stop(task)
    assert (status.connects, status.reconnects, status.last_error) == (1, 0, None)


async def test_a_dropped_connection_is_resubscribed_in_every_token_mode() -> None:
    async with kite_emulator(rate=200, drop_every=0.6) as kite:
        a, b, c = (kite.token(k) for k in ("NSE:INFY", "NSE:TCS", "NSE:NIFTY 50"))
        sink = Collector()
        supervisor = FeedSupervisor(kite.adapter(), sink, FAST)
        await supervisor.subscribe([str(a), str(b)], Mode.FULL)
        await supervisor.subscribe([str(c)], Mode.LTP)
        task = asyncio.create_task(supervisor.run())
        want = {a: "full", b: "full", c: "ltp"}
        await wait_for(lambda: len(kite.emulator.history) >= 2)
        await wait_for(lambda: kite.emulator.history[1].modes == want)
        before = len(sink.ticks)
        await wait_for(lambda: len(sink.ticks) > before)
        status = supervisor.statuses[0]
        await stop(task)
    second = kite.emulator.history[1]
    assert [(r.action, sorted(r.tokens), r.mode) for r in second.requests[:4]] == [
        ("subscribe", sorted([a, b]), None), ("mode", sorted([a, b]), "full"),
        ("subscribe", [c], None), ("mode", [c], "ltp"),
    ]  # fmt: skip
    assert status.reconnects >= 1
    assert "1011" in (status.last_disconnect or "")
    assert {t.token for t in sink.ticks} <= {str(a), str(b), str(c)}


async def test_a_silent_socket_is_detected_and_replaced() -> None:
    async with kite_emulator(rate=100, silence_after=0.5) as kite:
        supervisor = FeedSupervisor(kite.adapter(), Collector(), FAST)
        await supervisor.subscribe([str(kite.token("NSE:INFY"))], Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        # The replacement connection counts once it has resubscribed (on a busy machine the
        # emulator records the connection a moment before the subscribe message arrives).
        await wait_for(
            lambda: len(kite.emulator.history) >= 2 and bool(kite.emulator.history[1].modes)
        )
        status = supervisor.statuses[0]
        await stop(task)
    assert "heartbeat timeout" in (status.last_disconnect or "")
    assert kite.emulator.history[1].modes == {kite.token("NSE:INFY"): "quote"}


async def test_an_access_token_expiring_mid_session_stops_the_feed_with_the_login_hint() -> None:
    async with kite_emulator(rate=100, expire_token_after=0.5) as kite:
        sink = Collector()
        supervisor = FeedSupervisor(kite.adapter(), sink, FAST)
        await supervisor.subscribe([str(kite.token("NSE:INFY"))], Mode.LTP)
        with pytest.raises(FeedAuthError, match=r"HTTP 403.*marketpulse login kite"):
            await asyncio.wait_for(supervisor.run(), 20)
    assert sink.ticks, "ticks flowed before the token expired"
    assert supervisor.statuses[0].state is ConnectionState.FAILED
    assert kite.emulator.history[0].closed == "access token expired"
    assert kite.emulator.rejected == ["403 Token is invalid or has expired."]


async def test_wrong_credentials_are_an_auth_error_at_the_handshake() -> None:
    async with kite_emulator() as kite:
        adapter = kite.adapter(env={"KITE_API_KEY": "test_api_key", "KITE_ACCESS_TOKEN": "old"})
        with pytest.raises(FeedAuthError, match=r"expired.*06:00 IST.*marketpulse login kite"):
            await adapter.connect(await adapter.load_credentials())
    assert kite.emulator.rejected == ["403 Incorrect `api_key` or `access_token`."]


async def test_missing_or_expired_saved_credentials_say_to_log_in(tmp_path: Path) -> None:
    adapter = KiteAdapter("ws://127.0.0.1:9", tmp_path, env={})
    with pytest.raises(CredentialsError, match=r"missing api_key \(KITE_API_KEY\).*login kite"):
        await adapter.load_credentials()
    save_session(tmp_path, expires_at=1.0)
    with pytest.raises(CredentialsError, match=r"expired at 1970-01-01.*marketpulse login kite"):
        await adapter.load_credentials()
    save_session(tmp_path)
    assert await adapter.load_credentials() == CREDENTIALS


async def test_instruments_are_pooled_across_connections_up_to_the_account_limit() -> None:
    async with kite_emulator(rate=300) as kite:
        tokens = [str(item.token) for item in kite.emulator.listing.listings[:7]]
        adapter = kite.adapter(max_instruments_per_connection=3)
        supervisor = FeedSupervisor(adapter, Collector(), FAST)
        await supervisor.subscribe(tokens[:5], Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        await wait_for(lambda: sum(len(c.modes) for c in kite.emulator.connections) == 5)
        per_connection = sorted(len(c.modes) for c in kite.emulator.connections)
        await supervisor.subscribe(tokens[5:7], Mode.LTP)  # fills the second, opens a third
        await wait_for(lambda: len(kite.emulator.connections) == 3)
        with pytest.raises(FeedLimitError, match="above the account limit of 9"):
            await supervisor.subscribe([str(i) for i in range(1, 4)], Mode.LTP)
        await wait_for(lambda: sum(len(c.modes) for c in kite.emulator.connections) == 7)
        await stop(task)
    assert per_connection == [2, 3]
    assert len(supervisor.subscriptions) == 7


async def test_the_server_caps_tokens_per_connection_and_connections_per_api_key() -> None:
    async with kite_emulator(max_tokens_per_connection=2, max_connections_per_key=1) as kite:
        adapter = kite.adapter()
        connection = await adapter.connect(CREDENTIALS)
        await connection.subscribe(["11", "12", "13"], Mode.LTP)
        while adapter.problems.server_errors == 0:
            await connection.receive()
        assert kite.emulator.history[0].modes == {11: "ltp", 12: "ltp"}
        assert "at most 2 instruments per connection" in (adapter.problems.last_server_error or "")

        extra = await adapter.connect(CREDENTIALS)  # one connection per key in this test
        assert await extra.receive() == []  # the error message ...
        with pytest.raises(FeedConnectionError, match="code 1008, too many connections"):
            await extra.receive()  # ... then the close
        await connection.close()
    assert adapter.problems.server_errors == 2


async def test_malformed_frames_and_text_messages_never_end_the_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with kite_emulator(snapshots=False) as kite:
        infy = kite.token("NSE:INFY")
        adapter = kite.adapter()
        connection = await adapter.connect(CREDENTIALS)
        good = encode_packet(Tick(source="kite", token=str(infy), exchange="NSE", mode="ltp",
                                  ltp=1500.0))  # fmt: skip
        caplog.set_level(logging.WARNING, logger="marketpulse.feeds.kite.client")
        for _ in range(3):
            kite.emulator.send_raw(frame_packets([b"\x01\x02\x03", good]))  # unknown length
        kite.emulator.send_raw(encode_text(ErrorMessage("market closed for maintenance")))
        kite.emulator.send_raw('{"type": "order", "data": {"order_id": "1", "status": "OPEN"}}')
        kite.emulator.send_raw("not json")
        kite.emulator.send_raw(encode_frame([msgspec.structs.replace(
            infy_full(infy), ltp=1501.0)]))  # fmt: skip
        ticks: list[Tick] = []
        while not ticks or ticks[-1].ltp != 1501.0:
            ticks += await connection.receive()
        await connection.close()
    assert [t.ltp for t in ticks] == [1500.0, 1500.0, 1500.0, 1501.0]
    problems = adapter.problems
    assert (problems.bad_frames, problems.skipped_packets, problems.server_errors) == (3, 3, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "malformed frame" in w]) == 1  # logged once, counted 3×
    assert any("market closed for maintenance" in w for w in warnings)


def test_market_hours_are_the_nse_session_in_india() -> None:
    adapter = KiteAdapter("ws://127.0.0.1:9", Path("/nonexistent"))

    def at(text: str) -> bool:
        return adapter.market_open(datetime.fromisoformat(text).replace(tzinfo=IST).timestamp())

    assert at("2024-01-15T09:15:00") and at("2024-01-15T15:29:59")  # Monday
    assert not at("2024-01-15T09:14:59") and not at("2024-01-15T15:30:00")
    assert not at("2024-01-13T11:00:00")  # Saturday


def test_a_bad_websocket_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="KITE_WS_URL 'https://x' is not a ws://"):
        KiteAdapter("https://x", Path("/nonexistent"))


async def test_a_burst_larger_than_the_subscription_arrives_in_several_frames() -> None:
    """Kite sends at most one packet per instrument per frame; a generator catching up (here
    nine ticks of three instruments at once) splits them rather than building one frame the
    client's message size limit would refuse (which closed the connection under load)."""
    async with kite_emulator(snapshots=False, max_tokens_per_connection=3) as kite:
        tokens = [kite.token(s) for s in ("NSE:INFY", "NSE:RELIANCE", "NSE:TCS")]
        adapter = kite.adapter()
        connection = await adapter.connect(CREDENTIALS)
        await connection.subscribe([str(t) for t in tokens], Mode.LTP)
        await wait_for(lambda: kite.emulator.history and len(kite.emulator.history[0].modes) == 3)
        kite.emulator.push([msgspec.structs.replace(infy_full(t), ltp=100.0 + i)
                            for i in range(3) for t in tokens])  # fmt: skip
        frames = []
        while sum(len(f) for f in frames) < 9:
            ticks = await connection.receive()
            if ticks:
                frames.append(ticks)
        await connection.close()
    assert [len(f) for f in frames] == [3, 3, 3]
    assert kite.emulator.history[0].frames_sent == 3

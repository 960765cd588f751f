"""The shared connection supervisor against a real WebSocket server that misbehaves."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import pytest

from marketpulse.feeds.base import (
    ConnectionState,
    ConnectionStatus,
    FeedAuthError,
    FeedLimitError,
    FeedSupervisor,
    ReconnectPolicy,
)
from marketpulse.model import Mode, Tick
from tests.support.ws_feed import CredentialBox, ScriptedAdapter, ScriptedFeedServer

FAST = ReconnectPolicy(min_delay=0.01, max_delay=0.05, heartbeat_timeout=0.5, stall_timeout=0.5)


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []

    async def __call__(self, batch: list[Tick]) -> None:
        self.ticks.extend(batch)


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def running(supervisor: FeedSupervisor) -> asyncio.Task[None]:
    return asyncio.create_task(supervisor.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


Body = Callable[[ScriptedFeedServer, FeedSupervisor, Collector, CredentialBox], Awaitable[None]]


async def test_reconnects_after_drop_and_resubscribes_every_token_in_its_mode() -> None:
    async with ScriptedFeedServer() as server:
        sink = Collector()
        sup = FeedSupervisor(ScriptedAdapter(server.url, CredentialBox("good")), sink, FAST)
        await sup.subscribe(["A", "B"], Mode.FULL)
        await sup.subscribe(["C"], Mode.LTP)
        task = await running(sup)
        await wait_for(lambda: len(sink.ticks) > 5)
        await server.drop_all()
        await wait_for(lambda: len(server.connections) == 2)
        before = len(sink.ticks)
        await wait_for(lambda: len(sink.ticks) > before + 5)
        second = server.connections[1]
        modes = {tok: mode for tokens, mode in second.subscribes for tok in tokens}
        assert modes == {"A": "full", "B": "full", "C": "ltp"}
        assert sup.statuses[0].reconnects == 1
        assert sup.statuses[0].state is ConnectionState.CONNECTED
        await stop(task)


async def test_rereads_credentials_before_every_reconnect() -> None:
    async with ScriptedFeedServer() as server:
        server.valid_tokens = {"day1", "day2"}
        box = CredentialBox("day1")
        sink = Collector()
        sup = FeedSupervisor(ScriptedAdapter(server.url, box), sink, FAST)
        await sup.subscribe(["A"], Mode.QUOTE)
        task = await running(sup)
        await wait_for(lambda: len(sink.ticks) > 0)
        box.token = "day2"  # the daily token rolled over while connected
        await server.drop_all()
        await wait_for(lambda: len(server.connections) == 2)
        assert [c.token for c in server.connections] == ["day1", "day2"]
        assert box.reads == 2
        await stop(task)


async def test_silent_socket_is_treated_as_dead_and_replaced() -> None:
    async with ScriptedFeedServer() as server:
        sink = Collector()
        sup = FeedSupervisor(ScriptedAdapter(server.url, CredentialBox("good")), sink, FAST)
        await sup.subscribe(["A"], Mode.LTP)
        task = await running(sup)
        await wait_for(lambda: len(sink.ticks) > 0)
        server.silent = True
        await wait_for(lambda: len(server.connections) >= 2, timeout=5)
        assert "heartbeat" in (sup.statuses[0].last_disconnect or "")
        server.silent = False
        before = len(sink.ticks)
        await wait_for(lambda: len(sink.ticks) > before)
        await stop(task)


async def test_heartbeats_without_data_trigger_the_stall_watchdog_only_when_market_open() -> None:
    async with ScriptedFeedServer() as server:
        server.heartbeats_only = True
        sink = Collector()
        sup = FeedSupervisor(ScriptedAdapter(server.url, CredentialBox("good")), sink, FAST)
        await sup.subscribe(["A"], Mode.LTP)
        task = await running(sup)
        await wait_for(lambda: len(server.connections) >= 2, timeout=5)
        assert "data stall" in (sup.statuses[0].last_disconnect or "")
        await stop(task)

    async with ScriptedFeedServer() as server:
        server.heartbeats_only = True
        adapter = ScriptedAdapter(server.url, CredentialBox("good"), market_open=False)
        sup = FeedSupervisor(adapter, Collector(), FAST)
        await sup.subscribe(["A"], Mode.LTP)
        task = await running(sup)
        await asyncio.sleep(1.5)  # three stall timeouts: a closed market is allowed silence
        assert len(server.connections) == 1
        await stop(task)


async def test_rejected_credentials_stop_retrying_with_a_clear_error() -> None:
    async with ScriptedFeedServer() as server:
        sup = FeedSupervisor(
            ScriptedAdapter(server.url, CredentialBox("expired")), Collector(), FAST
        )
        await sup.subscribe(["A"], Mode.LTP)
        with pytest.raises(FeedAuthError, match="log in again"):
            await asyncio.wait_for(sup.run(), 5)
        await asyncio.sleep(0.2)
        assert server.rejected == 1
        assert sup.statuses[0].state is ConnectionState.FAILED
        assert sup.fatal_error is not None


async def test_unreachable_server_is_retried_with_backoff() -> None:
    box = CredentialBox("good")
    sup = FeedSupervisor(ScriptedAdapter("ws://127.0.0.1:9/feed", box), Collector(), FAST)
    await sup.subscribe(["A"], Mode.LTP)
    task = await running(sup)
    await wait_for(lambda: box.reads >= 3)
    assert sup.statuses[0].state in (ConnectionState.BACKOFF, ConnectionState.CONNECTING)
    assert "connect failed" in (sup.statuses[0].last_error or "")
    await stop(task)


async def test_subscriptions_split_across_connections_at_the_per_connection_cap() -> None:
    async with ScriptedFeedServer() as server:
        sink = Collector()
        adapter = ScriptedAdapter(
            server.url, CredentialBox("good"), per_connection=2, connections=2
        )
        sup = FeedSupervisor(adapter, sink, FAST)
        await sup.subscribe(["A", "B", "C"], Mode.FULL)
        task = await running(sup)
        await wait_for(lambda: {t.token for t in sink.ticks} == {"A", "B", "C"})
        assert len(server.connections) == 2
        per_conn = [sorted(t for toks, _ in c.subscribes for t in toks) for c in server.connections]
        assert sorted(per_conn) == [["A", "B"], ["C"]]
        with pytest.raises(FeedLimitError, match="above the account limit of 4"):
            await sup.subscribe(["D", "E"], Mode.FULL)
        assert set(sup.subscriptions) == {"A", "B", "C"}
        await sup.subscribe(["D"], Mode.LTP)  # fits in the second connection, live
        await wait_for(lambda: any(t.token == "D" for t in sink.ticks))
        await stop(task)


async def test_live_subscribe_and_unsubscribe_reach_the_open_connection() -> None:
    async with ScriptedFeedServer() as server:
        sink = Collector()
        sup = FeedSupervisor(ScriptedAdapter(server.url, CredentialBox("good")), sink, FAST)
        await sup.subscribe(["A"], Mode.LTP)
        task = await running(sup)
        await wait_for(lambda: len(sink.ticks) > 0)
        await sup.subscribe(["B"], Mode.QUOTE)
        await wait_for(lambda: any(t.token == "B" for t in sink.ticks))
        await sup.unsubscribe(["A"])
        await asyncio.sleep(0.1)
        sink.ticks.clear()
        await wait_for(lambda: len(sink.ticks) > 3)
        assert {t.token for t in sink.ticks} == {"B"}
        assert server.connections[0].unsubscribes == [["A"]]
        await stop(task)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = ReconnectPolicy(min_delay=0.5, max_delay=30.0)
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.5 <= d <= ceiling for d in delays)
        if ceiling > 1.0:
            assert max(delays) - min(delays) > (ceiling - 0.5) * 0.5  # really jittered
    assert policy.delay(1000, rng) <= 30.0


async def test_a_slot_whose_cancellation_was_swallowed_stops_instead_of_reconnecting() -> None:
    """On Python 3.11 a cancellation racing a timeout inside a connection can surface as an
    ordinary error; the slot must still stop (the supervisor waits for its slots when it
    stops), not back off and reconnect forever."""
    sink_calls: list[list[Tick]] = []

    async def sink(batch: list[Tick]) -> None:
        sink_calls.append(batch)

    slow = ReconnectPolicy(min_delay=5.0, max_delay=5.0, heartbeat_timeout=1.0, stall_timeout=1.0)
    supervisor = FeedSupervisor(ScriptedAdapter("ws://127.0.0.1:9", CredentialBox("good")),
                                sink, slow)  # fmt: skip
    status = ConnectionStatus(index=0)

    async def slot() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as a racing timeout can do
            await asyncio.sleep(10)
        await supervisor._backoff(status, 0, "connection closed")

    task = asyncio.create_task(slot())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    assert status.state is not ConnectionState.BACKOFF

"""WebSocket fan-out: one firehose reader per API process, many clients, none can slow the rest.

The hub reads every firehose shard with XREAD and routes each entry by its key field to the
clients subscribed to that channel, forwarding the tick JSON untouched inside a ``data``
message (no parse, no re-encode). Each client owns a mailbox with *latest-value conflation per
channel*: while a client is busy, a newer tick for a channel replaces the older one, so the
mailbox never holds more than one message per subscribed channel. A client whose socket has not
accepted a message for ``WS_CLIENT_MAX_LAG_SECONDS`` — or whose control queue overflows — is
disconnected with a reason, and the hub carries on for everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD, Entry, stream_entries
from marketpulse.config import Settings

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]

CLOSE_TOO_SLOW = 1008  # policy violation: the client did not keep up


class Client:
    """One WebSocket connection's mailbox and writer."""

    def __init__(self, send: Send, *, max_pending: int, max_lag: float) -> None:
        self._send = send
        self._max_pending = max_pending
        self.max_lag = max_lag
        self.channels: set[str] = set()
        self._pending: dict[str, str] = {}
        self._control: deque[str] = deque()
        self._wake = asyncio.Event()
        self.sending_since: float | None = None
        self.kicked = asyncio.Event()
        self.kick_reason: str | None = None
        self.sent = 0
        self.conflated = 0

    def offer(self, channel: str, message: str) -> None:
        """Queue a data message, replacing an unsent older one for the same channel."""
        pending = self._pending
        if channel in pending:
            self.conflated += 1
        elif len(pending) >= self._max_pending:
            self.kick(f"more than {self._max_pending} channels pending")
            return
        pending[channel] = message
        self._wake.set()

    def tell(self, message: str) -> None:
        """Queue a control message (info/error); these are never conflated."""
        if len(self._control) >= self._max_pending:
            self.kick(f"more than {self._max_pending} control messages pending")
            return
        self._control.append(message)
        self._wake.set()

    def lagging(self, now: float) -> bool:
        since = self.sending_since
        return since is not None and now - since > self.max_lag

    def kick(self, reason: str) -> None:
        if not self.kicked.is_set():
            self.kick_reason = reason
            self.kicked.set()

    async def write_loop(self) -> None:
        """Send queued messages until cancelled; control messages go first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._control or self._pending:
                if self._control:
                    batch = list(self._control)
                    self._control.clear()
                else:
                    batch = list(self._pending.values())
                    self._pending = {}
                for message in batch:
                    self.sending_since = time.monotonic()
                    await self._send(message)
                    self.sent += 1
                self.sending_since = None


class Hub:
    """Routes firehose entries to subscribed clients."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        # Ticks and the store role's live candle updates share the entry format.
        self._streams = [*settings.firehose_keys, settings.candle_stream_key]
        self.clients: set[Client] = set()
        self._channels: dict[str, set[Client]] = {}
        self._has_subscribers = asyncio.Event()
        self.delivered = 0
        self.disconnected_slow = 0
        self.redis_ok = True

    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        if client.kick_reason is not None and client in self.clients:
            self.disconnected_slow += 1
            log.info(
                "disconnected a WebSocket client: %s (sent %d, conflated %d)",
                client.kick_reason,
                client.sent,
                client.conflated,
            )
        self.clients.discard(client)
        for channel in list(client.channels):
            self.unsubscribe(client, channel)

    def subscribe(self, client: Client, channel: str) -> None:
        client.channels.add(channel)
        self._channels.setdefault(channel, set()).add(client)
        self._has_subscribers.set()

    def unsubscribe(self, client: Client, channel: str) -> None:
        client.channels.discard(channel)
        members = self._channels.get(channel)
        if members is not None:
            members.discard(client)
            if not members:
                del self._channels[channel]
        if not self._channels:
            self._has_subscribers.clear()

    async def run(self) -> None:
        """Read the firehose while anyone listens; start from "now" whenever listening resumes."""
        last_ids: dict[str, bytes | str] = {}
        delay = 0.2
        while True:
            if not self._channels:
                await self._has_subscribers.wait()
                last_ids = {}
            if not last_ids:
                last_ids = dict.fromkeys(self._streams, "$")
            try:
                reply = await self._redis.xread(last_ids, count=1000, block=1000)  # type: ignore[arg-type]
                self.redis_ok = True
                delay = 0.2
            except (RedisError, OSError) as exc:
                if self.redis_ok:
                    log.error("WebSocket hub lost Redis: %s", exc)
                self.redis_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for stream, entries in stream_entries(reply):
                last_ids[stream.decode()] = entries[-1][0]
                self._dispatch(entries)
            self._kick_laggards()

    def _dispatch(self, entries: list[Entry]) -> None:
        channels = self._channels
        for _, fields in entries:
            key = fields.get(KEY_FIELD)
            if key is None:
                continue
            channel = key.decode()
            members = channels.get(channel)
            if not members:
                continue
            message = (
                '{"message_type":"data","channel":"'
                + channel
                + '","data":'
                + fields[TICK_FIELD].decode()
                + "}"
            )
            for client in members:
                client.offer(channel, message)
            self.delivered += len(members)

    def _kick_laggards(self) -> None:
        now = time.monotonic()
        for client in self.clients:
            if client.lagging(now):
                client.kick(
                    f"client too slow: a message waited more than {client.max_lag:.1f}s to be sent"
                )

    async def watchdog(self) -> None:
        """Check laggards even when no new data arrives."""
        while True:
            await asyncio.sleep(0.5)
            self._kick_laggards()

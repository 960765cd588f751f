"""WebSocket fan-out: one firehose reader per API process, many clients, none can slow the rest.

The hub reads every firehose shard with XREAD and routes each entry by its key field to the
clients subscribed to that channel. On a single server the XREAD goes through our own raw-RESP
connection (``bus/resp.py``) and its reply is used as hiredis parses it (flat field lists):
redis-py's read, with a dict built per entry, was a fifth of the API role's CPU at 10k ticks/s.
On a Redis Cluster it goes through redis-py's cluster client, which routes a multi-key XREAD by
its keys (the raw router routes by a command's second part, here ``COUNT``). Each entry's tick
JSON is forwarded untouched inside a ``data`` message (no parse, no re-encode). Each client
owns a mailbox with *latest-value conflation per channel*: while a client is busy, a newer tick
for a channel replaces the older one, so the mailbox never holds more than one message per
subscribed channel. A client whose socket has not accepted a message for
``WS_CLIENT_MAX_LAG_SECONDS`` — or whose control queue overflows — is disconnected with a
reason, and the hub carries on for everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from marketpulse.bus.connection import is_cluster
from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD, stream_entries
from marketpulse.bus.resp import RespConnection, command
from marketpulse.config import Settings
from marketpulse.websocket_frames import FrameWriter, text_frames

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]

CLOSE_TOO_SLOW = 1008  # policy violation: the client did not keep up

READ_COUNT = 1000  # entries per stream per XREAD
READ_BLOCK_MS = 1000
BATCH_LIMIT = 500  # data messages per batch frame (~200 KB, under clients' usual 1 MiB limit)

# An XREAD entry as the hub routes it: its id and its fields as a flat [name, value, ...] list.
RawEntry = tuple[bytes, list[bytes]]
RawReply = list[tuple[bytes, list[RawEntry]]]


def xread_command(last_ids: dict[str, bytes]) -> bytes:
    """One blocking ``XREAD`` of every stream in ``last_ids`` after its id, packed as RESP."""
    return command(
        b"XREAD", b"COUNT", b"%d" % READ_COUNT, b"BLOCK", b"%d" % READ_BLOCK_MS, b"STREAMS",
        *(key.encode() for key in last_ids), *last_ids.values(),
    )  # fmt: skip


def parse_xread(reply: object) -> RawReply:
    """An XREAD reply as hiredis returns it (``None`` when the block timed out), with a Redis
    error reply raised instead of returned."""
    if isinstance(reply, ResponseError):
        raise reply
    return cast(RawReply, reply or [])


def route_fields(fields: list[bytes]) -> tuple[bytes, bytes] | None:
    """The channel key and tick JSON of a firehose entry's flat field list, ``None`` when it
    lacks either. The writers put ``k`` then ``t``; anything else takes the slow path."""
    if len(fields) == 4 and fields[0] == KEY_FIELD and fields[2] == TICK_FIELD:
        return fields[1], fields[3]
    named = dict(zip(fields[::2], fields[1::2], strict=False))
    key, tick = named.get(KEY_FIELD), named.get(TICK_FIELD)
    return None if key is None or tick is None else (key, tick)


def data_message(channel: str, tick_json: str) -> str:
    """The client protocol's ``data`` message around an untouched tick JSON."""
    return '{"message_type":"data","channel":"' + channel + '","data":' + tick_json + "}"


def batch_frames(messages: list[str], limit: int = BATCH_LIMIT) -> list[str]:
    """``data`` messages as ``{"message_type":"batch","messages":[...]}`` frames of at most
    ``limit`` messages each, for clients that opted in (``/ws?batch=true``): one frame and one
    socket write for everything queued, instead of one per message."""
    return [
        '{"message_type":"batch","messages":[' + ",".join(messages[i : i + limit]) + "]}"
        for i in range(0, len(messages), limit)
    ]


class Client:
    """One WebSocket connection's mailbox and writer. With ``batch`` the data messages queued
    while the previous send was in progress go out together as batch frames.

    With ``write_frames`` (the server's :data:`websocket_frames.EXTENSION`) everything queued is
    encoded here and written at once, one frame per message as before, straight from the hub's
    read loop (no task switch per client); whenever that writer declines (back-pressure,
    closing, compression) the writer task sends the messages through ``send`` one by one.
    """

    def __init__(
        self,
        send: Send,
        *,
        max_pending: int,
        max_lag: float,
        batch: bool = False,
        write_frames: FrameWriter | None = None,
    ) -> None:
        self._send = send
        self._write_frames = write_frames
        self.batch = batch
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

    def flush(self) -> None:
        """Send what :meth:`offer` queued: written at once when the direct writer takes it,
        else by the writer task (which also keeps it behind a send still in progress). The hub
        calls this once per client per firehose read, not once per message."""
        if self.sending_since is not None or not self._write_direct():
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

    def _write_direct(self) -> bool:
        """Everything queued as frames in one write, control messages first; False (nothing
        taken) when there is no direct writer or it declines."""
        write = self._write_frames
        if write is None:
            return False
        control = list(self._control)
        messages = list(self._pending.values())
        frames = control + (batch_frames(messages) if self.batch and messages else messages)
        if frames and not write(text_frames(frames)):
            return False
        self._control.clear()
        self._pending = {}
        self.sent += len(control) + len(messages)
        return True

    async def write_loop(self) -> None:
        """Send queued messages until cancelled; control messages go first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._control or self._pending:
                if self._write_direct():
                    break
                if self._control:
                    frames = list(self._control)
                    self._control.clear()
                    count = len(frames)
                else:
                    frames = list(self._pending.values())
                    self._pending = {}
                    count = len(frames)
                    if self.batch:
                        frames = batch_frames(frames)
                for message in frames:
                    self.sending_since = time.monotonic()
                    await self._send(message)
                self.sent += count
                self.sending_since = None


class Hub:
    """Routes firehose entries to subscribed clients."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        # Ticks and the store role's live candle updates share the entry format.
        self._streams = [*settings.firehose_keys, settings.candle_stream_key]
        self._raw: RespConnection | None = None
        if settings.redis_url and not is_cluster(redis):
            self._raw = RespConnection(settings.redis_url, cluster=False)
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
        try:
            await self._run()
        finally:
            if self._raw is not None:
                await self._raw.close()

    async def _run(self) -> None:
        last_ids: dict[str, bytes] = {}
        delay = 0.2
        while True:
            if not self._channels:
                await self._has_subscribers.wait()
                last_ids = {}
            if not last_ids:
                last_ids = dict.fromkeys(self._streams, b"$")
            try:
                reply = await self._read(last_ids)
                self.redis_ok = True
                delay = 0.2
            except (RedisError, OSError) as exc:
                if self.redis_ok:
                    log.error("WebSocket hub lost Redis: %s", exc)
                self.redis_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            touched: set[Client] = set()
            for stream, entries in reply:
                last_ids[stream.decode()] = entries[-1][0]
                self._dispatch(entries, touched)
            for client in touched:
                client.flush()
            self._kick_laggards()

    async def _read(self, last_ids: dict[str, bytes]) -> RawReply:
        """One blocking XREAD after ``last_ids``: raw RESP on a single server, redis-py on a
        cluster (its entries flattened to the raw shape)."""
        if self._raw is not None:
            (reply,) = await self._raw.roundtrip(xread_command(last_ids), 1)
            return parse_xread(reply)
        reply = await self._redis.xread(last_ids, count=READ_COUNT, block=READ_BLOCK_MS)  # type: ignore[arg-type]
        return [
            (stream, [(entry_id, [x for pair in fields.items() for x in pair])
                      for entry_id, fields in entries])
            for stream, entries in stream_entries(reply)
        ]  # fmt: skip

    def _dispatch(self, entries: list[RawEntry], touched: set[Client]) -> None:
        """Queue each entry for its channel's clients; ``touched`` collects who got any."""
        channels = self._channels
        for _, fields in entries:
            routed = route_fields(fields)
            if routed is None:
                continue
            channel = routed[0].decode()
            members = channels.get(channel)
            if not members:
                continue
            message = data_message(channel, routed[1].decode())
            for client in members:
                client.offer(channel, message)
            touched.update(members)
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

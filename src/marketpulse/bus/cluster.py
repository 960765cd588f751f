"""Raw RESP against a Redis Cluster: every packed command to the master that owns its slot.

:class:`~marketpulse.bus.resp.RespConnection` hands a cluster's traffic to a
:class:`ClusterRouter`, so the publisher (and anything else that packs commands) is the same
code for one server and for a cluster. The router splits each buffer into its commands (the
buffer is RESP, so hiredis parses it back), keeps a MULTI…EXEC block together, sends one buffer
per master (pipelined, in the caller's order per master) and hands the replies back in the
caller's order. The slot map comes from ``CLUSTER SLOTS``; it is refreshed on ``MOVED`` (the
command is sent again where the cluster says), ``ASK`` is followed once with ``ASKING``, and any
connection error drops every node connection and the map, so the next buffer starts afresh.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import hiredis
from redis.exceptions import ConnectionError, ResponseError

from marketpulse.bus.resp import RespConnection, command
from marketpulse.bus.slots import (
    command_key,
    key_slot,
    parse_cluster_slots,
    redirection,
    slot_owners,
)

log = logging.getLogger(__name__)

Node = tuple[str, int]
_MAX_REDIRECTS = 5


@dataclass(slots=True)
class _Unit:
    """Commands that go to one node together: one command, or a whole MULTI…EXEC."""

    commands: list[list[bytes]]
    slot: int | None
    node: Node | None = None
    replies: list[object] = field(default_factory=list)

    @property
    def payload(self) -> bytes:
        return b"".join(command(*parts) for parts in self.commands)


def split_commands(payload: bytes) -> list[list[bytes]]:
    """The commands in a buffer of packed RESP commands (arrays of bulk strings)."""
    reader = hiredis.Reader()
    reader.feed(payload)
    out: list[list[bytes]] = []
    while (parts := reader.gets()) is not False:
        if not isinstance(parts, list) or not parts or not isinstance(parts[0], bytes):
            raise ValueError(f"not a RESP command (an array of bulk strings): {parts!r:.80}")
        out.append(parts)
    return out


def group_units(commands: list[list[bytes]]) -> list[_Unit]:
    """Commands as routing units: a MULTI…EXEC block routes by its first keyed command."""
    units: list[_Unit] = []
    block: list[list[bytes]] | None = None
    for parts in commands:
        name = parts[0].upper()
        if block is not None:
            block.append(parts)
            if name in (b"EXEC", b"DISCARD"):
                keys = [k for k in map(command_key, block) if k is not None]
                units.append(_Unit(block, key_slot(keys[0]) if keys else None))
                block = None
            continue
        if name == b"MULTI":
            block = [parts]
            continue
        key = command_key(parts)
        units.append(_Unit([parts], key_slot(key) if key is not None else None))
    if block is not None:
        raise ValueError("a MULTI block without EXEC")
    return units


class ClusterRouter:
    """Routes packed commands across the masters of a cluster (see the module docstring)."""

    def __init__(self, seed: RespConnection) -> None:
        self._seed = seed
        self._owners: list[Node | None] | None = None
        self._nodes: dict[Node, RespConnection] = {}
        self._pending: deque[list[_Unit]] = deque()

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers (the seed first)."""
        seed: Node = (self._seed.host, self._seed.port)
        error: BaseException | None = None
        for host, port in dict.fromkeys([seed, *self._nodes]):
            conn = self._seed.at(host, port)
            try:
                (reply,) = await conn.roundtrip(command(b"CLUSTER", b"SLOTS"), 1)
            except (OSError, ConnectionError, TimeoutError) as exc:
                error = exc
                continue
            finally:
                await conn.close()
            if isinstance(reply, ResponseError):
                raise ConnectionError(f"CLUSTER SLOTS failed: {reply}")
            self._owners = slot_owners(parse_cluster_slots(reply, host))
            return
        raise ConnectionError(f"no cluster node answered CLUSTER SLOTS: {error}")

    def _node(self, node: Node) -> RespConnection:
        conn = self._nodes.get(node)
        if conn is None:
            conn = self._nodes[node] = self._seed.at(*node)
        return conn

    def _assign(self, units: list[_Unit]) -> None:
        owners = self._owners
        assert owners is not None
        fallback: Node | None = next((n for n in owners if n is not None), None)
        for unit in units:
            node = owners[unit.slot] if unit.slot is not None else fallback
            if node is None:
                raise ConnectionError(f"cluster slot {unit.slot} has no master (cluster down?)")
            unit.node = node

    async def send(self, payload: bytes) -> None:
        """Split, route and send one buffer; its replies are read by :meth:`receive`."""
        try:
            if self._owners is None:
                await self.refresh()
            units = group_units(split_commands(payload))
            self._assign(units)
            per_node: dict[Node, list[bytes]] = {}
            for unit in units:
                assert unit.node is not None
                per_node.setdefault(unit.node, []).append(unit.payload)
            self._pending.append(units)
            for node, parts in per_node.items():
                await self._node(node).send(b"".join(parts))
        except BaseException:
            await self._reset()
            raise

    async def receive(self, replies: int) -> int:
        """Read the replies of the oldest :meth:`send`, following redirections; returns how
        many replies were errors (logged once with the first message)."""
        try:
            units = self._pending.popleft()
            counts: dict[Node, int] = {}
            for unit in units:
                assert unit.node is not None
                counts[unit.node] = counts.get(unit.node, 0) + len(unit.commands)
            got = {n: await self._node(n).receive_replies(c) for n, c in counts.items()}
            offsets = dict.fromkeys(got, 0)
            for unit in units:
                assert unit.node is not None
                start = offsets[unit.node]
                offsets[unit.node] = start + len(unit.commands)
                unit.replies = got[unit.node][start : offsets[unit.node]]
            for unit in units:
                await self._follow(unit)
        except BaseException:
            await self._reset()
            raise
        results = [r for unit in units for r in unit.replies]
        errors = [r for r in results if isinstance(r, ResponseError)]
        if len(results) != replies:
            log.error("expected %d Redis replies, routed %d", replies, len(results))
        if errors:
            log.error("%d of %d Redis commands failed, first: %s", len(errors), replies, errors[0])
        return len(errors)

    async def _follow(self, unit: _Unit) -> None:
        """Send ``unit`` again while its replies say its slot lives elsewhere."""
        for _ in range(_MAX_REDIRECTS):
            moved = next((m for r in unit.replies if (m := redirection(r)) is not None), None)
            if moved is None:
                return
            kind, _, host, port = moved
            if kind == "MOVED":
                await self.refresh()
                node: Node = (host, port)
                conn = self._node(node)
                unit.node = node
                unit.replies = await conn.roundtrip(unit.payload, len(unit.commands))
            else:
                asking = b"".join(command(b"ASKING") + command(*p) for p in unit.commands)
                replies = await self._node((host, port)).roundtrip(asking, 2 * len(unit.commands))
                unit.replies = replies[1::2]
        log.error("gave up following cluster redirections for slot %s", unit.slot)

    async def _reset(self) -> None:
        self._pending.clear()
        self._owners = None
        await self.close()

    async def close(self) -> None:
        nodes, self._nodes = self._nodes, {}
        for conn in nodes.values():
            await conn.close()

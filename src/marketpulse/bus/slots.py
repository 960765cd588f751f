"""Redis Cluster key slots and slot maps, as pure functions.

A cluster splits the key space into 16384 slots, each owned by one master. The slot of a key is
CRC16 (XMODEM) of the key modulo 16384 — of only the part between the first ``{`` and the next
``}`` when that part is not empty (the hash tag), so keys that must be used together can be put
in one slot. The raw-RESP publisher routes every command it packs with these functions; the
general client (redis-py's ``RedisCluster``) has its own copy of the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

SLOTS: Final = 16384

# Commands whose key is not their second part, or that have none (everything else the
# service packs — SET, LPUSH, LTRIM, EXPIRE, XADD, HINCRBY, GET, … — has its key first).
_KEYLESS: Final = frozenset({b"MULTI", b"EXEC", b"DISCARD", b"PING", b"ASKING", b"INFO"})


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE: Final = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses it."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that decides its slot: the hash tag if it has a non-empty one."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes | str) -> int:
    """The cluster slot of ``key`` (``key_slot("foo") == 12182``)."""
    raw = key.encode() if isinstance(key, str) else key
    return crc16(hash_tag(raw)) % SLOTS


def command_key(parts: Sequence[bytes]) -> bytes | None:
    """The key a packed command routes by (its second part), ``None`` for a keyless one."""
    if len(parts) < 2 or parts[0].upper() in _KEYLESS:
        return None
    return parts[1]


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots ``start``..``end`` (inclusive) and the master that owns them."""

    start: int
    end: int
    host: str
    port: int


def parse_cluster_slots(reply: object, default_host: str) -> list[SlotRange]:
    """``CLUSTER SLOTS`` as slot ranges of masters. A master listed without an address (an
    empty or ``?`` host) is reachable where the question was asked: ``default_host``."""
    if not isinstance(reply, list):
        raise ValueError(f"unexpected CLUSTER SLOTS reply: {reply!r}")
    ranges = []
    for entry in reply:
        start, end, master = entry[0], entry[1], entry[2]
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        if host in ("", "?"):
            host = default_host
        ranges.append(SlotRange(int(start), int(end), host, int(master[1])))
    return ranges


def slot_owners(ranges: Sequence[SlotRange]) -> list[tuple[str, int] | None]:
    """Per slot, the ``(host, port)`` of its master (``None`` for an unassigned slot)."""
    owners: list[tuple[str, int] | None] = [None] * SLOTS
    for r in ranges:
        node = (r.host, r.port)
        for slot in range(r.start, r.end + 1):
            owners[slot] = node
    return owners


def redirection(error: object) -> tuple[str, int, str, int] | None:
    """``MOVED 3999 127.0.0.1:6381`` / ``ASK …`` as ``(kind, slot, host, port)``."""
    text = str(error)
    kind, _, rest = text.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, address = rest.partition(" ")
    host, _, port = address.rpartition(":")
    if not slot.isdigit() or not port.isdigit():
        return None
    return kind, int(slot), host, int(port)

"""RESP packing is byte-exact (checked against redis-py's own packer)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from marketpulse.bus.resp import bulk, command, command_prefix

# redis-py splits a first argument on spaces ("CONFIG GET"), so it is a command name here.
names = st.sampled_from([b"XADD", b"SET", b"LPUSH", b"HINCRBY", b"AUTH"])
parts = st.tuples(names, st.lists(st.binary(max_size=64), max_size=8)).map(lambda t: [t[0], *t[1]])


@given(parts=parts)
def test_command_matches_the_client_library_packing(parts: list[bytes]) -> None:
    assert command(*parts) == b"".join(Connection().pack_command(*parts))


@given(parts=parts, split=st.integers(0, 8))
def test_prefix_plus_bulks_is_the_whole_command(parts: list[bytes], split: int) -> None:
    split = min(split, len(parts))
    built = command_prefix(len(parts), *parts[:split]) + b"".join(bulk(p) for p in parts[split:])
    assert built == command(*parts)

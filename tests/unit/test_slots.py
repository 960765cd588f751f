"""Redis Cluster key slots: the published vectors and the hash-tag rule."""

from __future__ import annotations

import pytest

from marketpulse.bus.cluster import group_units, split_commands
from marketpulse.bus.resp import command
from marketpulse.bus.slots import (
    SlotRange,
    crc16,
    hash_tag,
    key_slot,
    parse_cluster_slots,
    redirection,
    slot_owners,
)
from marketpulse.config import Settings


def test_crc16_matches_the_cluster_spec_reference_value() -> None:
    assert crc16(b"123456789") == 0x31C3  # the check value in the Redis Cluster spec


@pytest.mark.parametrize(
    ("key", "slot"),
    [("foo", 12182), ("bar", 5061), ("hello", 866), ("", 0), ("{user1000}.following", 3443)],
)
def test_key_slot_matches_redis(key: str, slot: int) -> None:
    assert key_slot(key) == slot


def test_keys_with_the_same_hash_tag_share_a_slot() -> None:
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot(b"market:{RELIANCE.NSE}:full") == key_slot("market_data_stream:{RELIANCE.NSE}")


@pytest.mark.parametrize(
    ("key", "tag"),
    [(b"foo{}{bar}", b"foo{}{bar}"), (b"foo{{bar}}zap", b"{bar"), (b"foo{bar}{zap}", b"bar"),
     (b"{}", b"{}"), (b"no tag", b"no tag"), (b"open{only", b"open{only")],
)  # fmt: skip
def test_hash_tag_is_the_first_non_empty_braced_part(key: bytes, tag: bytes) -> None:
    assert hash_tag(key) == tag


def test_every_key_read_together_shares_a_slot() -> None:
    s = Settings(_env_file=None, firehose_shards=8)  # type: ignore[call-arg]
    internal = {key_slot(k) for k in [
        *s.firehose_keys, s.stats_key, s.spill_marker_key("ab"), s.feeds_key, s.candle_stream_key,
        s.gaps_key, s.subscriptions_key,
    ]}  # fmt: skip
    assert len(internal) == 1
    symbol = {key_slot(k) for k in [
        s.snapshot_key("TCS.NSE", "full"), s.history_key("TCS.NSE", "ltp"),
        s.symbol_stream_key("TCS.NSE"),
    ]}  # fmt: skip
    assert len(symbol) == 1


def test_cluster_slots_reply_becomes_an_owner_per_slot() -> None:
    reply = [[0, 5460, [b"", 7000, b"id0"]], [5461, 16383, [b"10.0.0.2", 7001, b"id1"], [b"r", 1]]]
    ranges = parse_cluster_slots(reply, "seed.example")
    assert ranges == [SlotRange(0, 5460, "seed.example", 7000),
                      SlotRange(5461, 16383, "10.0.0.2", 7001)]  # fmt: skip
    owners = slot_owners(ranges)
    assert owners[0] == owners[5460] == ("seed.example", 7000)
    assert owners[5461] == owners[16383] == ("10.0.0.2", 7001)


def test_redirections_are_parsed_and_other_errors_are_not() -> None:
    assert redirection("MOVED 3999 127.0.0.1:6381") == ("MOVED", 3999, "127.0.0.1", 6381)
    assert redirection("ASK 12 ::1:7000") == ("ASK", 12, "::1", 7000)
    assert redirection("WRONGTYPE Operation against a key") is None


def test_a_transaction_routes_as_one_unit_by_its_first_key() -> None:
    payload = b"".join([
        command(b"SET", b"a", b"1"), command(b"MULTI"), command(b"XADD", b"{mp}:ticks:0", b"*",
        b"k", b"v"), command(b"SET", b"{mp}:spill", b"9"), command(b"EXEC"),
    ])  # fmt: skip
    units = group_units(split_commands(payload))
    assert [len(u.commands) for u in units] == [1, 4]
    assert units[0].slot == key_slot("a") and units[1].slot == key_slot("{mp}")
    assert b"".join(u.payload for u in units) == payload

"""The spill file: record format, append/read back, replay offset, torn tails, the lock."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketpulse.bus.spill import (
    HEADER_SIZE,
    MAGIC,
    Record,
    SpillFile,
    SpillLockedError,
    decode_records,
    encode_records,
    spill_name,
)

records_strategy = st.lists(
    st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=300)), max_size=50
)


def records(count: int, start: int = 0) -> list[Record]:
    return [(f"SYM{i % 7}.NSE".encode(), b'{"ltp":%d}' % i) for i in range(start, start + count)]


def test_a_record_is_json_length_key_length_key_then_json() -> None:
    assert encode_records([(b"AB", b"{}")]) == struct.pack(">IH", 2, 2) + b"AB{}"


@given(records_strategy)
def test_records_round_trip(items: list[tuple[bytes, bytes]]) -> None:
    buffer = encode_records(items)
    decoded, ends = decode_records(buffer, len(items) + 1)
    assert decoded == items
    assert ends[-1:] == ([len(buffer)] if items else [])


@given(records_strategy, st.integers(min_value=0, max_value=20_000))
def test_an_incomplete_last_record_is_left_for_later(
    items: list[tuple[bytes, bytes]], cut: int
) -> None:
    buffer = encode_records(items)
    cut = min(cut, len(buffer))
    decoded, ends = decode_records(buffer[:cut], len(items) + 1)
    assert decoded == items[: len(decoded)]
    assert all(end <= cut for end in ends)
    complete = [e for e in decode_records(buffer, len(items) + 1)[1] if e <= cut]
    assert ends == complete


def test_decode_stops_at_the_record_limit() -> None:
    decoded, ends = decode_records(encode_records(records(10)), 3)
    assert decoded == records(3) and len(ends) == 3


def test_appended_batches_read_back_in_order_and_the_offset_survives_a_reopen(
    tmp_path: Path,
) -> None:
    spill = SpillFile.open(tmp_path, "mp")
    assert spill.is_empty and not spill.path.exists()
    spill.append(records(5))
    spill.append(records(5, 5))
    got, ends = spill.read(HEADER_SIZE, 3)
    assert got == records(3)
    spill.commit(ends[-1], 3)
    assert spill.pending == 7
    spill.close()

    again = SpillFile.open(tmp_path, "mp")
    assert again.committed == ends[-1] and again.pending == 7
    rest, _ = again.read(again.committed, 100)
    assert rest == records(7, 3)
    again.close()


def test_a_torn_last_record_is_cut_off_on_open(tmp_path: Path) -> None:
    spill = SpillFile.open(tmp_path, "mp")
    spill.append(records(4))
    size = spill.size
    spill.close()
    with spill.path.open("ab") as handle:
        handle.write(encode_records(records(1, 4))[:-3])  # the machine died mid-write
    again = SpillFile.open(tmp_path, "mp")
    assert again.size == size == os.path.getsize(again.path)
    assert again.pending == 4
    again.append(records(1, 9))
    got, _ = again.read(HEADER_SIZE, 100)
    assert got == [*records(4), *records(1, 9)]
    again.close()


def test_a_sidecar_of_another_file_is_ignored(tmp_path: Path) -> None:
    spill = SpillFile.open(tmp_path, "mp")
    spill.append(records(3))
    spill.offset_path.write_text(f"{'00' * 16} 999\n")
    spill.close()
    again = SpillFile.open(tmp_path, "mp")
    assert again.committed == HEADER_SIZE and again.pending == 3
    again.close()


def test_remove_drops_file_and_sidecar_and_the_next_file_gets_a_new_id(tmp_path: Path) -> None:
    spill = SpillFile.open(tmp_path, "mp")
    spill.append(records(2))
    _, ends = spill.read(HEADER_SIZE, 10)
    first_id = spill.file_id
    spill.commit(ends[-1], 2)
    assert spill.is_empty
    spill.remove()
    assert not spill.path.exists() and not spill.offset_path.exists()
    spill.append(records(1))
    assert spill.file_id != first_id and spill.pending == 1
    assert spill.path.read_bytes()[: len(MAGIC)] == MAGIC
    spill.close()


def test_a_file_that_is_not_a_spill_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / f"{spill_name('mp')}.spill"
    path.write_bytes(b"something else entirely, not ours")
    spill = SpillFile.open(tmp_path, "mp")
    assert spill.is_empty
    assert path.with_suffix(".corrupt").exists()
    spill.close()


def test_records_between_counts_whole_records(tmp_path: Path) -> None:
    spill = SpillFile.open(tmp_path, "mp")
    spill.append(records(10))
    _, ends = spill.read(HEADER_SIZE, 10)
    assert spill.records_between(HEADER_SIZE, ends[6]) == 7
    assert spill.records_between(ends[2], ends[9]) == 7
    spill.close()


def test_a_second_owner_of_the_same_prefix_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    first = SpillFile.open(tmp_path, "mp")
    with pytest.raises(SpillLockedError, match="in use"):
        SpillFile.open(tmp_path, "mp")
    other = SpillFile.open(tmp_path, "other")  # another prefix has its own file
    other.close()
    first.close()
    SpillFile.open(tmp_path, "mp").close()


def test_prefixes_map_to_safe_distinct_names() -> None:
    assert spill_name("mpt-ab12") == "mpt-ab12-8"
    assert "/" not in spill_name("a/b:c") and spill_name("a:b") != spill_name("a:bb")

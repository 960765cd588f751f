"""The hub's raw firehose read: XREAD packing, reply shape, routing fields and data messages."""

from __future__ import annotations

import json

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from marketpulse.api.hub import (
    batch_frames,
    data_message,
    parse_xread,
    route_fields,
    xread_command,
)


def test_xread_command_lists_every_stream_then_every_id_in_the_same_order() -> None:
    packed = xread_command({"{mp}:ticks:0": b"$", "{mp}:candles": b"1700000000000-3"})
    reader = hiredis.Reader()
    reader.feed(packed)
    assert reader.gets() == [
        b"XREAD", b"COUNT", b"1000", b"BLOCK", b"1000", b"STREAMS",
        b"{mp}:ticks:0", b"{mp}:candles", b"$", b"1700000000000-3",
    ]  # fmt: skip


def test_a_timed_out_xread_is_no_entries_and_an_error_reply_is_raised() -> None:
    assert parse_xread(None) == []
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        parse_xread(ResponseError("WRONGTYPE Operation against a key"))


def test_route_fields_takes_key_and_tick_in_writer_order_or_any_order() -> None:
    assert route_fields([b"k", b"TCS.NSE", b"t", b"{}"]) == (b"TCS.NSE", b"{}")
    assert route_fields([b"t", b"{}", b"k", b"TCS.NSE"]) == (b"TCS.NSE", b"{}")
    assert route_fields([b"x", b"1", b"k", b"TCS.NSE", b"t", b"{}"]) == (b"TCS.NSE", b"{}")


@pytest.mark.parametrize(
    "fields", [[], [b"k", b"TCS.NSE"], [b"t", b"{}"], [b"k", b"TCS.NSE", b"x", b"{}"]]
)
def test_route_fields_skips_entries_without_key_or_tick(fields: list[bytes]) -> None:
    assert route_fields(fields) is None


@given(
    channel=st.from_regex(r"[A-Z0-9&._:-]{1,30}", fullmatch=True),
    tick=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False) | st.text(max_size=8)),
)
def test_data_message_is_the_documented_envelope_around_the_untouched_tick(
    channel: str, tick: dict[str, object]
) -> None:
    raw = json.dumps(tick)
    assert json.loads(data_message(channel, raw)) == {
        "message_type": "data",
        "channel": channel,
        "data": json.loads(raw),
    }


def test_batch_frames_wrap_data_messages_unchanged_in_frames_of_at_most_the_limit() -> None:
    messages = [data_message(f"S{i}.NSE", f'{{"ltp":{i}}}') for i in range(5)]
    frames = batch_frames(messages, limit=2)
    decoded = [json.loads(f) for f in frames]
    assert [d["message_type"] for d in decoded] == ["batch"] * 3
    assert [len(d["messages"]) for d in decoded] == [2, 2, 1]
    assert [m for d in decoded for m in d["messages"]] == [json.loads(m) for m in messages]
    assert batch_frames([]) == []

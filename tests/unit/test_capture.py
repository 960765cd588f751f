"""Raw frame captures round-trip exactly and refuse damaged files clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.feeds.capture import CaptureError, FrameWriter, read_frames

frames = st.lists(
    st.tuples(st.integers(0, 2**63), st.binary(max_size=300) | st.text(max_size=100)),
    max_size=30,
)


@settings(max_examples=50)
@given(items=frames)
def test_frames_round_trip_with_their_kind_and_time(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[int, bytes | str]]
) -> None:
    path = tmp_path_factory.mktemp("cap") / "frames.bin"
    writer = FrameWriter(path)
    for ts, frame in items:
        writer.write(ts, frame)
    writer.close()
    assert list(read_frames(path)) == items
    assert writer.frames == len(items)


def test_a_file_that_is_not_a_capture_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"hello")
    with pytest.raises(CaptureError, match="not a marketpulse raw capture"):
        list(read_frames(path))


def test_a_truncated_capture_yields_its_whole_frames_then_says_where_it_breaks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.bin"
    writer = FrameWriter(path)
    writer.write(1, b"abc")
    writer.write(2, b"defgh")
    writer.close()
    path.write_bytes(path.read_bytes()[:-2])
    frames = read_frames(path)
    assert next(frames) == (1, b"abc")
    with pytest.raises(CaptureError, match="frame 1 is cut short"):
        next(frames)

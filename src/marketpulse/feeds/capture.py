"""Raw frame captures: what a broker sent, byte for byte, with receive times.

``marketpulse record --raw`` writes them and ``marketpulse replay`` decodes them again — for
regression tests and bug reports. Format: the magic line ``MPRAW1\\n``, then one record per frame:
``ts_recv`` (uint64 ns) ‖ kind (uint8: 0 binary, 1 text) ‖ length (uint32) ‖ payload, big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

MAGIC: Final = b"MPRAW1\n"
_HEADER: Final = struct.Struct(">QBI")
BINARY: Final = 0
TEXT: Final = 1


class CaptureError(ValueError):
    """The file is not a capture, or is cut short; the message says where."""


class FrameWriter:
    """Appends frames to a capture file (buffered; ``close`` flushes)."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")
        self._file.write(MAGIC)
        self.frames = 0

    def write(self, ts_recv: int, frame: bytes | str) -> None:
        if isinstance(frame, str):
            payload, kind = frame.encode(), TEXT
        else:
            payload, kind = frame, BINARY
        self._file.write(_HEADER.pack(ts_recv, kind, len(payload)))
        self._file.write(payload)
        self.frames += 1

    def close(self) -> None:
        self._file.close()


def read_frames(path: Path) -> Iterator[tuple[int, bytes | str]]:
    """Yield ``(ts_recv, frame)``; text frames come back as ``str``."""
    with path.open("rb") as source:
        if source.read(len(MAGIC)) != MAGIC:
            raise CaptureError(f"{path} is not a marketpulse raw capture (no {MAGIC!r} header)")
        index = 0
        while header := source.read(_HEADER.size):
            if len(header) < _HEADER.size:
                raise CaptureError(f"{path}: frame {index} header is cut short")
            ts_recv, kind, length = _HEADER.unpack(header)
            payload = source.read(length)
            if len(payload) < length:
                raise CaptureError(f"{path}: frame {index} is cut short ({len(payload)}/{length})")
            yield ts_recv, (payload.decode() if kind == TEXT else payload)
            index += 1

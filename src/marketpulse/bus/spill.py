"""The ingest spill file: firehose entries parked on local disk while the store falls behind.

Each firehose shard is ``XADD … MAXLEN ~ FIREHOSE_MAXLEN``: when the store cannot keep up (a
PostgreSQL outage), Redis would trim entries the store has not read yet. Before that happens
the publisher writes the firehose part of new ticks here instead, and replays the file into the
firehose once the store has caught up (issue #7).

Format: a header (``MAGIC`` and a random 16-byte file id) followed by records, each
``>IH`` (tick JSON length, key length), the tick key, then the canonical tick JSON
(:func:`marketpulse.model.encode_tick`) — the key rides along, as in the firehose entry, so
replay shards ticks without parsing them. Appends are whole batches in one ``write`` and are
never fsynced: a crash of the process loses nothing (the OS has the bytes), a crash of the
machine loses what the OS had not written yet, and a torn last record is cut off when the file
is opened again.

A sidecar (``.offset``) holds the file id and the offset up to which ticks have been replayed
and acknowledged by Redis; it is replaced atomically after each replayed chunk. One file per
``REDIS_KEY_PREFIX``, guarded by an exclusive ``flock`` on a ``.lock`` file held for the
publisher's lifetime.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MAGIC: Final = b"MPSPILL1"
FILE_ID_BYTES: Final = 16
HEADER_SIZE: Final = len(MAGIC) + FILE_ID_BYTES
_RECORD: Final = struct.Struct(">IH")
_READ_BLOCK: Final = 1 << 21

Record = tuple[bytes, bytes]  # (tick key, tick JSON)


class SpillLockedError(RuntimeError):
    """Another live process holds the spill file of this key prefix."""


def encode_records(records: list[Record]) -> bytes:
    """Records as one buffer, for a single append."""
    pack = _RECORD.pack
    return b"".join(pack(len(data), len(key)) + key + data for key, data in records)


def decode_records(
    buffer: bytes, max_records: int, start: int = 0
) -> tuple[list[Record], list[int]]:
    """Up to ``max_records`` whole records from ``buffer[start:]`` and the offset (in
    ``buffer``) after each; an incomplete record at the end is left for the next read."""
    records: list[Record] = []
    ends: list[int] = []
    size = len(buffer)
    position = start
    header = _RECORD.size
    unpack = _RECORD.unpack_from
    while len(records) < max_records and position + header <= size:
        data_len, key_len = unpack(buffer, position)
        key_start = position + header
        data_start = key_start + key_len
        end = data_start + data_len
        if end > size:
            break
        records.append((buffer[key_start:data_start], buffer[data_start:end]))
        ends.append(end)
        position = end
    return records, ends


def spill_name(prefix: str) -> str:
    """The file stem for a key prefix: safe characters only, plus the prefix's length so that
    two prefixes differing only in unsafe characters rarely meet."""
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', prefix)}-{len(prefix)}"


class SpillFile:
    """The spill file of one key prefix: append batches, read them back in order, remember how
    far replay got. Opening takes the exclusive lock; :meth:`close` releases it."""

    def __init__(self, directory: Path, prefix: str) -> None:
        stem = spill_name(prefix)
        self.path = directory / f"{stem}.spill"
        self.offset_path = directory / f"{stem}.offset"
        self._lock_path = directory / f"{stem}.lock"
        self._directory = directory
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self.file_id = b""
        self.size = 0  # bytes in the file (0 = no file)
        self.committed = 0  # offset replayed and acknowledged
        self.pending = 0  # records after ``committed``

    @classmethod
    def open(cls, directory: Path, prefix: str) -> SpillFile:
        """Lock and open the spill file of ``prefix`` (reading an existing one back);
        :class:`SpillLockedError` when another process holds it."""
        spill = cls(directory, prefix)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(spill._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpillLockedError(f"{spill.path} is in use by another process") from None
        spill._lock_fd = fd
        try:
            spill._load()
        except BaseException:
            spill.close()
            raise
        return spill

    @property
    def is_empty(self) -> bool:
        """Nothing left to replay."""
        return self.committed >= self.size

    def _load(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            self._clear_sidecar()
            return
        header = os.pread(fd, HEADER_SIZE, 0)
        if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
            os.close(fd)
            if len(header) < HEADER_SIZE and MAGIC.startswith(header[: len(MAGIC)]):
                self.path.unlink()  # created, then the machine died before the header landed
                self._clear_sidecar()
                return
            aside = self.path.with_suffix(".corrupt")
            os.replace(self.path, aside)
            log.error("%s is not a spill file; moved aside to %s", self.path, aside)
            self._clear_sidecar()
            return
        self._fd = fd
        self.file_id = header[len(MAGIC) :]
        self.committed = self._read_sidecar()
        end = os.fstat(fd).st_size
        # Count what is left and cut off a record torn by a machine crash.
        position = self.committed
        block = _READ_BLOCK
        while position < end:
            buffer = os.pread(fd, block, position)
            records, ends = decode_records(buffer, 1 << 62)
            if records:
                self.pending += len(records)
                position += ends[-1]
            elif position + block < end:
                block *= 2  # a record larger than the block
            else:
                break
        if position < end:
            log.warning("%s: cut off %d bytes of a torn last record", self.path, end - position)
            os.ftruncate(fd, position)
        self.size = position

    def _read_sidecar(self) -> int:
        try:
            text = self.offset_path.read_text().split()
        except FileNotFoundError:
            return HEADER_SIZE
        if len(text) == 2 and text[0] == self.file_id.hex() and text[1].isdigit():
            return max(HEADER_SIZE, int(text[1]))
        log.warning("%s does not belong to %s; replaying from the start", self.offset_path,
                    self.path)  # fmt: skip
        return HEADER_SIZE

    def _clear_sidecar(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.offset_path.unlink()

    def append(self, records: list[Record]) -> None:
        """Append a batch with one write (the file is created on first use)."""
        if not records:
            return
        if self._fd is None:
            self.file_id = os.urandom(FILE_ID_BYTES)
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND
            self._clear_sidecar()
            self._fd = os.open(self.path, flags, 0o600)
            _write_all(self._fd, MAGIC + self.file_id)
            self.size = self.committed = HEADER_SIZE
        try:
            _write_all(self._fd, encode_records(records))
        except OSError:
            os.ftruncate(self._fd, self.size)  # no torn record before the next append
            raise
        self.size += sum(_RECORD.size + len(k) + len(d) for k, d in records)
        self.pending += len(records)

    def read(self, offset: int, max_records: int) -> tuple[list[Record], list[int]]:
        """Up to ``max_records`` records from ``offset`` and the file offset after each."""
        if self._fd is None or offset >= self.size:
            return [], []
        block = min(_READ_BLOCK, self.size - offset)
        while True:
            buffer = os.pread(self._fd, block, offset)
            records, ends = decode_records(buffer, max_records)
            if records or block >= self.size - offset:
                return records, [offset + e for e in ends]
            block *= 2  # a record larger than the block

    def records_between(self, start: int, end: int) -> int:
        """How many records lie between two record boundaries."""
        count = 0
        while start < end:
            records, ends = self.read(start, 1 << 16)
            if not records:
                break
            for position in ends:
                if position > end:
                    return count
                count += 1
                start = position
        return count

    def commit(self, offset: int, records: int) -> None:
        """Record that everything before ``offset`` (``records`` more records) is in Redis."""
        self.committed = offset
        self.pending -= records
        temporary = self.offset_path.with_suffix(".offset.tmp")
        temporary.write_text(f"{self.file_id.hex()} {offset}\n")
        os.replace(temporary, self.offset_path)

    def remove(self) -> None:
        """Drop the fully replayed file and its sidecar (the lock stays held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._clear_sidecar()
        self.file_id = b""
        self.size = self.committed = self.pending = 0

    def close(self) -> None:
        """Close the file (kept on disk for the next start) and release the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

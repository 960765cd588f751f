"""The firehose entry format, shared by its writer (ingest) and its readers (store, api).

An entry has two fields: ``k``, the tick's key (canonical symbol, or ``source:token`` when the
instrument master does not know it), and ``t``, the canonical Tick JSON. Readers that only route
(the WebSocket hub) use ``k`` and forward ``t`` untouched, so no tick is parsed just to route it.
"""

from __future__ import annotations

import zlib
from typing import Final, cast

KEY_FIELD: Final = b"k"
TICK_FIELD: Final = b"t"


def shard_of(key: str, shards: int) -> int:
    """Stable shard of an instrument key: the same instrument always lands in one stream, so
    per-instrument order is preserved end to end."""
    return zlib.crc32(key.encode()) % shards


Entry = tuple[bytes, dict[bytes, bytes]]
StreamReply = list[tuple[bytes, list[Entry]]]


def stream_entries(reply: object) -> StreamReply:
    """XREAD/XREADGROUP replies as their real shape (the client's return type is too loose)."""
    return cast(StreamReply, reply or [])

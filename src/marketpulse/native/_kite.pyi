from collections.abc import Callable, Mapping
from typing import Any

SOURCE_SHA256: str

def configure(
    fallback: Callable[..., Any],
    namespace: dict[str, Any],
    tick_type: type,
    depth_type: type,
    result_type: type,
    source: str,
    ltp_mode: str,
    quote_mode: str,
    full_mode: str,
    unknown_exchange: str,
) -> None: ...
def decode_frame(
    data: bytes | bytearray | memoryview,
    ts_recv: int,
    index_exchanges: Mapping[int, str] | None = None,
) -> Any: ...

from collections.abc import Callable
from typing import Any

SOURCE_SHA256: str

def configure(
    fallback: Callable[..., Any],
    caches: tuple[dict[int, tuple[str, str, float, bool]], ...],
    decoded_type: type,
    tick_type: type,
    depth_type: type,
    source: str,
    ltt_offset: int,
) -> None: ...
def decode_message(data: Any, ts_recv: int | None = None, ltt_offset: int = ...) -> Any: ...

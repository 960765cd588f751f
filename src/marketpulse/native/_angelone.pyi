from collections.abc import Callable
from typing import Any

SOURCE_SHA256: str

def configure(
    fallback: Callable[[bytes, int], Any],
    memo: dict[bytes, tuple[str, str, int]],
    tick_type: type,
    depth_type: type,
    source: str,
    mode: str,
) -> None: ...
def snap(data: bytes, ts_recv: int) -> Any: ...

"""HTTP pieces every broker's REST client shares: request pacing and instrument-master download.

Brokers publish per-second request limits and tens-of-MB instrument masters; these are the one
implementation of each, so a fix to pacing or download progress reaches every provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from marketpulse.feeds.base import FeedError
from marketpulse.store.instruments import Progress


class RateLimiter:
    """At most ``rate`` requests per second, evenly spaced.

    Even spacing (rather than bursts up to a per-second quota) never trips a per-second limit
    whatever the server's window alignment is. ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            wait = self._next - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._next = max(self._clock(), self._next) + self.interval


class DownloadError(FeedError):
    """An instrument master could not be downloaded; the message names the URL and cause."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def download(
    url: str, progress: Progress | None = None, *, http_timeout: float = 120.0
) -> bytes:
    """The body at ``url``, reporting bytes as they arrive; ``file://`` paths are read locally
    (offline installs and tests)."""
    if url.startswith("file://"):
        data = await asyncio.to_thread(Path(url.removeprefix("file://")).read_bytes)
        if progress is not None:
            progress(len(data), len(data))
        return data
    chunks: list[bytes] = []
    done = 0
    try:
        async with (
            httpx.AsyncClient(timeout=http_timeout, follow_redirects=True) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                raise DownloadError(
                    f"downloading {url} failed: HTTP {response.status_code}", response.status_code
                )
            total = int(response.headers.get("content-length") or 0)
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except httpx.HTTPError as exc:
        raise DownloadError(f"downloading {url} failed: {exc!r}") from exc
    return b"".join(chunks)

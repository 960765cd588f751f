"""Child processes of a run: start, wait for a readiness line, keep a log tail, stop in order.

Each child is started with its own argv and environment; its output is drained continuously
(an undrained pipe would block it) and the last lines are kept so a failure can say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path


class ChildError(RuntimeError):
    """A child process failed to start or died; the message carries its last output lines."""


class Child:
    """One child process; ``ready`` is set when ``is_ready(line)`` matches an output line."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process,
                 is_ready: Callable[[str], bool]) -> None:  # fmt: skip
        self.name = name
        self.proc = proc
        self.ready = asyncio.Event()
        self.ready_line = ""
        self.tail: deque[str] = deque(maxlen=40)
        self._is_ready = is_ready
        self._readers = [
            asyncio.create_task(self._drain(stream))
            for stream in (proc.stdout, proc.stderr)
            if stream is not None
        ]

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self.tail.append(text)
            if not self.ready.is_set() and self._is_ready(text):
                self.ready_line = text
                self.ready.set()

    def output(self) -> str:
        return "\n".join(self.tail)

    async def wait_ready(self, within: float) -> str:
        """The readiness line; a child that exits or stays silent raises :class:`ChildError`."""
        ready = asyncio.create_task(self.ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        done, _ = await asyncio.wait({ready, exited}, timeout=within,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        ready.cancel()
        exited.cancel()
        if ready not in done or not self.ready.is_set():
            await asyncio.sleep(0.2)  # let the readers catch the last lines
            why = "exited" if self.proc.returncode is not None else f"not ready in {within:.0f}s"
            raise ChildError(f"{self.name} {why}; its last output:\n{self.output()}")
        return self.ready_line

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self, sig: int = signal.SIGINT, grace: float = 30.0) -> int | None:
        """Signal the child and wait; kill it after ``grace`` seconds. Returns its exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.proc.returncode


async def spawn(
    name: str,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    is_ready: Callable[[str], bool],
    stdin: bool = False,
) -> Child:
    """Start ``python -m <args>`` (the same interpreter as this process)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        env=env, cwd=cwd,
    )  # fmt: skip
    return Child(name, proc, is_ready)

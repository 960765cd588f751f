"""``marketpulse demo`` as a user runs it: a subprocess with no REDIS_URL/DATABASE_URL, so it
starts its own embedded Valkey and PostgreSQL; then Ctrl-C (SIGINT) must stop everything cleanly
without losing a tick."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from marketpulse.embedded import EmbeddedServices
from marketpulse.store.database import asyncpg_dsn

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home() -> Iterator[Path]:
    # Outside pytest's 0700 tmp dir: the embedded PostgreSQL runs as its own user under root.
    path = Path(tempfile.mkdtemp(prefix="marketpulse-demo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def wait_for_line(
    log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"demo exited with {proc.returncode}:\n{text}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {needle!r} within {timeout}s:\n{log.read_text(errors='replace')}")


async def test_demo_streams_ticks_and_stops_cleanly_on_sigint_losing_nothing(home: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"MARKETPULSE_HOME": str(home), "LOG_LEVEL": "INFO"})
    log = home / "demo.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - spawning only; waits happen off the loop
            [sys.executable, "-m", "marketpulse.cli", "demo", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        banner = await wait_for_line(log, "marketpulse is up", proc, timeout=120)
        startup = time.monotonic() - started
        assert f"http://127.0.0.1:{port}/docs" in banner
        assert f"ws://127.0.0.1:{port}/ws" in banner
        children = psutil.Process(proc.pid).children(recursive=True)
        names = {c.name() for c in children}
        assert any("valkey" in n for n in names) and "postgres" in names

        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            deadline = time.monotonic() + 30
            while True:
                health = (await http.get("/health")).json()
                if health["feeds"].get("sim", {}).get("connected"):
                    break
                assert time.monotonic() < deadline, health
                await asyncio.sleep(0.2)
            assert health["status"] == "ok"
            assert (await http.get("/docs")).status_code == 200

        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"message_type": "subscribe", "channel": "RELIANCE.NSE"}))
            data = []
            async with asyncio.timeout(15):
                while len(data) < 3:
                    msg = json.loads(await ws.recv())
                    if msg["message_type"] == "data":
                        data.append(msg)
        assert {m["data"]["symbol"] for m in data} == {"RELIANCE.NSE"}

        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()
        # Children stop with their owner, whether they saw the signal or not.
        _, alive = await asyncio.to_thread(psutil.wait_procs, children, 10)
        assert alive == [], [p.pid for p in alive]
        assert "marketpulse stopped." in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"demo start (first run, initdb included): {startup:.1f}s")

    # Nothing lost: every tick the publisher wrote to Redis is in PostgreSQL.
    with EmbeddedServices(home, want_redis=True, want_postgres=True) as services:
        assert services.redis_url and services.database_url
        client = aioredis.Redis.from_url(services.redis_url)
        counters = await client.hgetall("{mp}:stats")
        await client.aclose()
        conn = await asyncpg.connect(asyncpg_dsn(services.database_url))
        stored = await conn.fetchval("SELECT count(*) FROM ticks")
        await conn.close()
    assert int(counters[b"published"]) > 0
    assert stored == int(counters[b"published"]) == int(counters[b"stored"])


def test_demo_reports_a_clear_error_when_the_port_is_taken(home: Path) -> None:
    with contextlib.closing(socket.socket()) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env["MARKETPULSE_HOME"] = str(home)
        result = subprocess.run(
            [sys.executable, "-m", "marketpulse.cli", "demo", "--port", str(port)],
            capture_output=True, env=env, timeout=120,
        )  # fmt: skip
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "API_PORT" in output
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(home) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []

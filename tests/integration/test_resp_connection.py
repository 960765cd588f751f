"""The publisher's own Redis connection: database selection, authentication, failures."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from marketpulse.bus.resp import RespConnection, command
from marketpulse.embedded import valkey_binary
from tests.support.valkey import DisposableValkey


@pytest.fixture
def protected() -> Iterator[int]:
    """A Valkey that wants user "app" with password "s3cret"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(valkey_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", tempfile.mkdtemp(prefix="mp-auth-"), "--requirepass", "s3cret",
         "--user", "app", "on", ">s3cret", "~*", "+@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()


async def test_writes_go_to_the_database_in_the_url_with_the_credentials_in_it(
    protected: int,
) -> None:
    conn = RespConnection(f"redis://app:s3cret@127.0.0.1:{protected}/3")
    errors = await conn.execute(command(b"SET", b"k", b"v") + command(b"SET", b"k2", b"v2"), 2)
    assert errors == 0
    await conn.close()
    check = aioredis.Redis.from_url(f"redis://app:s3cret@127.0.0.1:{protected}/3")
    assert await check.get("k") == b"v"
    await check.aclose()


async def test_a_wrong_password_is_a_connection_error_that_says_so(protected: int) -> None:
    conn = RespConnection(f"redis://app:wrong@127.0.0.1:{protected}/0")
    with pytest.raises(RedisConnectionError, match="refused the connection set-up"):
        await conn.execute(command(b"PING"), 1)


async def test_error_replies_are_counted_and_the_rest_applied(redis_url: str) -> None:
    conn = RespConnection(redis_url)
    key = b"mp-resp-test-list"
    payload = (command(b"DEL", key) + command(b"LPUSH", key, b"a")
               + command(b"INCR", key) + command(b"LPUSH", key, b"b"))  # fmt: skip
    assert await conn.execute(payload, 4) == 1  # INCR on a list: WRONGTYPE
    await conn.execute(command(b"DEL", key), 1)
    await conn.close()


async def test_a_failed_call_closes_the_connection_and_the_next_one_reconnects(
    valkey: DisposableValkey,
) -> None:
    conn = RespConnection(valkey.url, connect_timeout=1)
    assert await conn.execute(command(b"PING"), 1) == 0
    valkey.kill()
    with pytest.raises((ConnectionRefusedError, RedisConnectionError, ConnectionResetError)):
        await conn.execute(command(b"PING"), 1)
    valkey.start()
    assert await conn.execute(command(b"SET", b"back", b"1"), 1) == 0
    await conn.close()

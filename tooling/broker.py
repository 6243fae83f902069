"""Start and stop the project's own Apache Kafka (deploy/kafka/kafka.sh) from Python."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
LIB = REPO / ".kafka" / "lib"


class BrokerError(RuntimeError):
    pass


def free_port_block(count: int) -> int:
    """A client port P such that P..P+count-1 and their controller ports (+10000) are free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 10000 + count > 65535:
            continue
        wanted = [base + i for i in range(count)] + [base + 10000 + i for i in range(count)]
        if all(_port_free(p) for p in wanted):
            return base
    raise BrokerError("no free block of ports for a test broker")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reachable(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True if a TCP connection to the first bootstrap server opens."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class LocalKafka:
    """A broker (or a 3-node cluster) of the project's own, in a folder of its own."""

    home: Path
    brokers: int = 1
    port: int | None = None
    start_seconds: float = 0.0
    # One broker only: extra client listeners, "NAME:PROTOCOL:PORT", and server properties for
    # them (kafka.sh --listener, --config); the PLAINTEXT listener on `port` stays.
    listeners: list[str] = field(default_factory=list)
    config: str = ""

    def __post_init__(self) -> None:
        # Ports chosen here, for a first start: a port taken meanwhile may be chosen again (not on a
        # restart, whose clients know the old ports).
        self._may_move = self.port is None
        if self.port is None:
            self.port = free_port_block(self.brokers)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"localhost:{self.port + i}" for i in range(self.brokers))

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(SCRIPT), *args, "--home", str(self.home)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def start(self) -> LocalKafka:
        if not any(LIB.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {LIB}: run 'make kafka-jars' (or 'make setup') first")
        t0 = time.monotonic()
        for _ in range(3):
            done = self._run("up", "--brokers", str(self.brokers), "--port", str(self.port), *self._extras())
            if done.returncode == 0 or not (self._may_move and self._port_was_taken()):
                break
            # free_port_block only checked the ports: another process (a client's ephemeral port)
            # can take one before the broker binds it. Start over on other ports.
            self.stop()
            shutil.rmtree(self.home, ignore_errors=True)
            self.port = free_port_block(self.brokers)
        self._may_move = False
        if done.returncode != 0:
            self.stop()  # the nodes that did start: no Java process outlives a failed start
            raise BrokerError(f"the local Kafka did not start:\n{done.stdout}\n{done.stderr}")
        self.start_seconds = time.monotonic() - t0
        return self

    def _extras(self) -> list[str]:
        args = [arg for spec in self.listeners for arg in ("--listener", spec)]
        if self.config:
            self.home.mkdir(parents=True, exist_ok=True)
            path = self.home / "extra.properties"
            path.write_text(self.config)
            args += ["--config", str(path)]
        return args

    def _port_was_taken(self) -> bool:
        logs = self.home.glob("node-*/logs/server.log")
        return any("Address already in use" in log.read_text(errors="replace") for log in logs)

    def stop(self) -> None:
        self._run("down", timeout=60)

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.home.glob("node-*/broker.pid")]

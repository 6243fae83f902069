"""HTTP: /metrics (Prometheus), /healthz (the loop turns), /readyz (models loaded, partitions assigned).

The server is one asyncio loop on one daemon thread, so no client can make it start threads that
compete with the scoring threads, and an idle connection costs a socket, not a thread. Each
connection has a deadline for its request, a size cap on it and a deadline for the answer, and
beyond `Limits.max_connections` new connections get a 503 at once (docs/metrics.md#the-server).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from worker.kafka.protocol import StartupError

log = logging.getLogger("worker.http")

TEXT = "text/plain; charset=utf-8"


class Health:
    """State the loop updates and the HTTP thread reads (simple attribute writes: no lock needed)."""

    def __init__(self, stall_after_s: float = 60.0, load_timeout_s: float = 600.0) -> None:
        self.models_loaded = False
        self.partitions_assigned = False
        self.stopping = False
        # Why Kafka cannot be used right now (start-up waiting for it, outputs not acknowledged).
        self.kafka_problem: str | None = None
        self.outputs_stalled = False
        # A client call that has not come back (worker/deadline.py): the worker consumes nothing meanwhile.
        self.stuck_call: str | None = None
        # The clocks start with the loop: loading models or waiting for Kafka at start is start-up,
        # which the startup probe times, not a stuck loop.
        self.last_loop: float | None = None
        self.last_commit: float | None = None  # or the last time there was nothing to commit
        self.stall_after_s = stall_after_s
        # Loading the models needs nothing outside the pod (unlike waiting for Kafka): one that takes
        # this long is hung (a device that never answers, storage that never returns), and only a
        # restart helps.
        self.created = time.monotonic()
        self.load_timeout_s = load_timeout_s

    def beat(self) -> None:
        self.last_loop = time.monotonic()
        if self.last_commit is None:
            self.last_commit = self.last_loop

    def committed(self) -> None:
        self.last_commit = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        """Unhealthy (so an orchestrator restarts us) if the loop or the commits are stuck."""
        now = time.monotonic()
        if not self.models_loaded and now - self.created > self.load_timeout_s:
            return False, (f"the models have not loaded in {now - self.created:.0f} s "
                           f"(--model-load-timeout-s {self.load_timeout_s:g})")  # fmt: skip
        if self.last_loop is None:
            return True, "starting"
        if now - self.last_loop > self.stall_after_s:
            return False, f"the consume loop has not turned for {now - self.last_loop:.0f} s"
        # While outputs wait for the broker no commit can succeed; the wait itself gives up at
        # --delivery-timeout-ms (and the worker exits), so a restart would only start it over.
        if not self.outputs_stalled and now - self.last_commit > self.stall_after_s:
            return False, f"no offset commit has succeeded for {now - self.last_commit:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        if not self.models_loaded:
            return False, "models not loaded yet"
        if self.stuck_call:
            return False, self.stuck_call
        if self.kafka_problem:
            return False, self.kafka_problem
        if not self.partitions_assigned:
            return False, "no input partitions assigned (joining the consumer group)"
        return True, "ready"


@dataclass(frozen=True)
class Limits:
    """What one client may cost. Prometheus and the kubelet probes send a few hundred bytes at
    once and read a few hundred kilobytes at most, so these only ever stop clients that stall."""

    max_connections: int = 64  # open at once; a scraper and two probes need three
    request_timeout_s: float = 5.0  # to send the whole request line and headers (slowloris)
    write_timeout_s: float = 10.0  # to take the answer (a client that never reads)
    max_request_bytes: int = 8192  # request line and headers together


class RequestTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client closed the connection before it sent a whole request."""


def answer(path: str, registry: CollectorRegistry, health: Health) -> tuple[int, bytes, str]:
    """Status, body and content type for a GET of `path` (the query string ignored)."""
    path = path.split("?")[0]
    if path == "/metrics":
        return 200, generate_latest(registry), CONTENT_TYPE_LATEST
    if path in ("/healthz", "/readyz"):
        ok, why = health.alive() if path == "/healthz" else health.ready()
        return (200 if ok else 503), (why + "\n").encode(), TEXT
    return 404, b"try /metrics, /healthz or /readyz\n", TEXT


def response(status: int, body: bytes, ctype: str = TEXT) -> bytes:
    """One HTTP/1.0 answer; the connection closes after it, as it did with http.server."""
    head = (
        f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def read_head(reader: asyncio.StreamReader, max_bytes: int) -> list[bytes]:
    """The request line and header lines, without the blank line that ends them."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # one line longer than the reader's limit
            raise RequestTooLarge from exc
        if not line.endswith(b"\n"):
            raise ClientGone
        size += len(line)
        if size > max_bytes:
            raise RequestTooLarge
        if line.strip() == b"":
            return lines
        lines.append(line)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a StartupError in one line that names the option to change."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "::" or an IPv6 address
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise StartupError(bind_error(host, port, exc)) from exc


def bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"metrics port {port} is already in use: choose another with --metrics-port / "
                "WORKER_METRICS_PORT, or 0 for no server")  # fmt: skip
    if exc.errno == errno.EACCES:
        return (f"not allowed to listen on metrics port {port} (ports below 1024 need privileges): "
                "choose another with --metrics-port / WORKER_METRICS_PORT")  # fmt: skip
    return (f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): set --metrics-host / "
            "WORKER_METRICS_HOST to an address of this machine, or 0.0.0.0 for all")  # fmt: skip


class MetricsServer:
    """/metrics, /healthz and /readyz on `sock`, served by one asyncio loop on a daemon thread."""

    def __init__(
        self, sock: socket.socket, registry: CollectorRegistry, health: Health, limits: Limits
    ) -> None:
        self.registry, self.health, self.limits = registry, health, limits
        self.server_port: int = sock.getsockname()[1]
        self._connections: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="metrics-http", daemon=True)
        self._thread.start()
        start = asyncio.start_server(self._connection, sock=sock, limit=limits.max_request_bytes)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop listening, drop the open connections, end the thread."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()

    async def _close(self) -> None:
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.limits.max_connections:
            # Refused before reading anything, so a flood of idle sockets costs no more than this.
            writer.write(response(503, b"too many connections\n"))
            writer.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._exchange(reader, writer)
        except OSError as exc:  # reset, broken pipe, or one of our timeouts (TimeoutError)
            # A scraper that timed out or was stopped: its business, not an error of ours.
            log.debug("client %s went away before its answer was sent (%r)", _peer(writer), exc)
        except Exception:
            log.exception("the metrics server failed to answer %s", _peer(writer))
        finally:
            self._connections.discard(task)
            writer.transport.abort()  # at once: a client that does not read must not hold a socket

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body, ctype = await self._request(reader)
        writer.transport.set_write_buffer_limits(high=0)  # so drain() waits for the last byte
        writer.write(response(status, body, ctype))
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
        if writer.can_write_eof():
            writer.write_eof()  # a FIN after the answer, so the abort in _connection loses nothing

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, bytes, str]:
        """What to answer: the route's answer, or why the request is refused."""
        try:
            head = await asyncio.wait_for(read_head(reader, self.limits.max_request_bytes),
                                          self.limits.request_timeout_s)  # fmt: skip
        except TimeoutError:
            return 408, b"request not received in time\n", TEXT
        except RequestTooLarge:
            return 431, b"request too large\n", TEXT
        except ClientGone as exc:
            raise ConnectionResetError("closed before its request was complete") from exc
        words = head[0].decode("latin-1").split() if head else []
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            return 400, b"bad request line\n", TEXT
        method, path, _ = words
        if method != "GET":
            return 501, f"unsupported method {method}\n".encode("latin-1"), TEXT
        status, body, ctype = answer(path, self.registry, self.health)
        log.debug("GET %s %d", path, status)  # each scrape: a line only at DEBUG
        return status, body, ctype


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"


def serve(
    host: str, port: int, registry: CollectorRegistry, health: Health, limits: Limits | None = None
) -> MetricsServer:
    """Start the server on a daemon thread; returns it (server.server_port is the bound port).
    A port in use or an address not of this machine raises StartupError."""
    return MetricsServer(bind(host, port), registry, health, limits or Limits())

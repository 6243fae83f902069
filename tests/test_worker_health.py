"""The /metrics, /healthz, /readyz server (worker/health.py): its answers, and the clients that must
not tie it up. No Kafka. Every wait is generous and ends as soon as the behaviour shows, so a
loaded machine makes these slower, never wrong."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from worker.health import Health, Limits, MetricsServer, serve
from worker.kafka.protocol import StartupError
from worker.metrics import new_metrics

PATIENCE_S = 60.0  # how long any one thing may take on a loaded machine before the test fails


@pytest.fixture
def start() -> Iterator[Callable[..., MetricsServer]]:
    """start(limits=..., registry=..., health=...) -> a server on a free port, shut down after the test."""
    servers: list[MetricsServer] = []

    def make(
        limits: Limits | None = None, registry: CollectorRegistry | None = None, health: Health | None = None
    ) -> MetricsServer:
        if registry is None:
            _, registry = new_metrics(None)
        # A long stall_after_s: /healthz must not turn 503 because a loaded machine ran us slowly.
        if health is None:
            health = Health(stall_after_s=3600)
            health.beat()  # the loop has started: /healthz says "ok", not "starting"
        server = serve("127.0.0.1", 0, registry, health, limits)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()


def get(server: MetricsServer, path: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{server.server_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=PATIENCE_S) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_until(server: MetricsServer, path: str, status: int = 200) -> bytes:
    """The body of the first answer with `status` (other answers and refusals are retried)."""
    deadline = time.monotonic() + PATIENCE_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            code, body = get(server, path)
        except OSError as exc:  # refused while the server is at its connection cap
            last = exc
        else:
            if code == status:
                return body
            last = code
        time.sleep(0.1)
    raise AssertionError(f"GET {path} never answered {status} (last: {last!r})")


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def connect(server: MetricsServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_port), timeout=PATIENCE_S)


def read_to_end(sock: socket.socket) -> bytes:
    """What the server sent before it closed the connection (a reset counts as closed)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def raw(server: MetricsServer, request: bytes) -> bytes:
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused while still sending
            sock.sendall(request)
        return read_to_end(sock)


def test_the_routes_answer_as_before(start) -> None:
    health = Health()
    server = start(health=health)
    status, body = get(server, "/metrics")
    assert status == 200 and b"# TYPE anomaly_worker_records_consumed_total counter" in body
    assert get(server, "/healthz") == (200, b"starting\n")  # models loading: start-up, not a stall
    health.beat()  # the loop turns
    assert get(server, "/healthz") == (200, b"ok\n")
    assert get(server, "/readyz") == (503, b"models not loaded yet\n")
    health.models_loaded = health.partitions_assigned = True
    assert get(server, "/readyz?verbose=1") == (200, b"ready\n")
    health.last_loop -= 120
    assert get(server, "/healthz")[0] == 503
    assert get(server, "/nowhere")[0] == 404
    hung = Health(load_timeout_s=600)
    assert hung.alive() == (True, "starting")
    hung.created -= 601  # the models have been loading for ten minutes: a restart is the only help
    ok, why = hung.alive()
    assert not ok and "have not loaded in 601 s" in why and "--model-load-timeout-s" in why
    hung.models_loaded = True  # loaded in time, then waiting for Kafka: start-up, never cut short
    assert hung.alive() == (True, "starting")
    assert raw(server, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 501 ")
    assert raw(server, b"GET / HTTP/1.0 extra\r\n\r\n").startswith(b"HTTP/1.0 400 ")


def test_500_idle_or_slow_connections_start_no_thread_and_do_not_lock_out_a_scraper(start) -> None:
    server = start(Limits(request_timeout_s=2.0))
    threads_before = threading.active_count()
    slow = []
    try:
        for i in range(500):  # half send nothing, half the start of a request line
            slow.append(connect(server))
            if i % 2:
                slow[-1].sendall(b"GET /metr")
        # The scraper's connection comes after all 500 in the accept queue, so by the time it
        # has its answers the server has seen every slow one.
        assert b"anomaly_worker_" in get_until(server, "/metrics")
        assert get_until(server, "/healthz") == b"ok\n"
        # http.server's ThreadingHTTPServer would hold one thread per open connection here.
        assert threading.active_count() <= threads_before + 2
        # Every slow connection is dropped by the server: a 408 once its time is up, or a 503
        # at once if it came beyond the connection cap.
        for sock in slow:
            reply = read_to_end(sock)
            assert reply.startswith((b"HTTP/1.0 408 ", b"HTTP/1.0 503 ")), reply[:40]
        assert wait_for(lambda: server.open_connections == 0)
        assert threading.active_count() <= threads_before + 2
    finally:
        for sock in slow:
            sock.close()


def test_a_client_that_trickles_its_headers_is_cut_off(start) -> None:
    server = start(Limits(request_timeout_s=1.0))
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:  # a header byte every 0.1 s: each read gets something
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.1)[0]:
                break
        else:
            pytest.fail("the server kept a trickling client for a minute")
        reply = read_to_end(sock)
    assert reply == b"" or reply.startswith(b"HTTP/1.0 408 "), reply[:40]
    assert wait_for(lambda: server.open_connections == 0)


def test_connections_beyond_the_cap_are_refused_at_once(start) -> None:
    server = start(Limits(max_connections=2, request_timeout_s=PATIENCE_S))
    idle = [connect(server), connect(server)]
    try:
        assert wait_for(lambda: server.open_connections == 2)
        assert raw(server, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 503 ")
        idle.pop().close()
        assert get_until(server, "/healthz") == b"ok\n"
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /metrics HTTP/1.0\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(50))
        + b"\r\n",
        b"GET /metrics?" + b"a" * 20_000 + b" HTTP/1.0\r\n\r\n",
    ],
    ids=["50-headers-of-1-KiB", "20-KiB-request-line"],
)
def test_an_oversized_request_is_refused(start, request_bytes: bytes) -> None:
    server = start()
    small = b"GET /metrics HTTP/1.0\r\n" + b"".join(b"X-Pad-%d: a\r\n" % i for i in range(5)) + b"\r\n"
    assert raw(server, small).startswith(b"HTTP/1.0 200 ")
    # http.server accepts both (its limits: 64 KiB a line, 100 headers). A 431 may be lost to the
    # reset that closing on unread input causes; what must never come back is the answer.
    reply = raw(server, request_bytes)
    assert reply == b"" or reply.startswith(b"HTTP/1.0 431 "), reply[:40]


class Big:
    """A collector whose exposition is 16 MB, more than the socket buffers between us hold."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("big", "padding", labels=["pad"])
        for i in range(1600):
            family.add_metric([f"{i}-" + "a" * 10_000], 1.0)
        yield family


def test_a_client_that_leaves_mid_answer_costs_one_debug_line_and_no_traceback(start, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    registry.register(Big())
    server = start(registry=registry)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the answer cannot fit on our side
    sock.settimeout(PATIENCE_S)
    sock.connect(("127.0.0.1", server.server_port))
    sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.0 200 ")  # the answer has begun
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # with a reset, as a killed scraper's kernel would
    assert wait_for(lambda: server.open_connections == 0)
    assert get(server, "/healthz") == (200, b"ok\n")  # and the server carries on
    assert "Traceback" not in capsys.readouterr().err
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.DEBUG


def test_a_port_in_use_is_one_line_naming_the_option() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as failed:
            serve("127.0.0.1", port, CollectorRegistry(), Health())
    message = str(failed.value)
    assert f"metrics port {port} is already in use" in message
    assert "--metrics-port / WORKER_METRICS_PORT" in message and "\n" not in message

"""HTTP: /metrics (Prometheus), /healthz (the loop turns), /readyz (models loaded, partitions assigned)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Health:
    """State the loop updates and the HTTP threads read (simple attribute writes: no lock needed)."""

    def __init__(self, stall_after_s: float = 60.0) -> None:
        self.models_loaded = False
        self.partitions_assigned = False
        self.stopping = False
        self.last_loop = time.monotonic()
        self.last_commit = time.monotonic()  # or the last time there was nothing to commit
        self.stall_after_s = stall_after_s

    def beat(self) -> None:
        self.last_loop = time.monotonic()

    def committed(self) -> None:
        self.last_commit = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        """Unhealthy (so an orchestrator restarts us) if the loop or the commits are stuck."""
        now = time.monotonic()
        if now - self.last_loop > self.stall_after_s:
            return False, f"the consume loop has not turned for {now - self.last_loop:.0f} s"
        if now - self.last_commit > self.stall_after_s:
            return False, f"no offset commit has succeeded for {now - self.last_commit:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        if not self.models_loaded:
            return False, "models not loaded yet"
        if not self.partitions_assigned:
            return False, "no input partitions assigned yet"
        return True, "ready"


def serve(host: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; returns it (server.server_port is the bound port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, why = health.alive()
                self._reply(200 if ok else 503, (why + "\n").encode())
            elif path == "/readyz":
                ok, why = health.ready()
                self._reply(200 if ok else 503, (why + "\n").encode())
            else:
                self._reply(404, b"try /metrics, /healthz or /readyz\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes every 15 s would flood the log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

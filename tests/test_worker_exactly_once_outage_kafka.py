"""An exactly-once worker through a broker outage, on a broker of the test's own: records stream in
while the only broker is down for 15 s. The worker must not hang: /readyz is 503 while it cannot commit,
and it either goes on when the broker is back or exits 1 within its deadline (a transactional call that
never returns: worker/deadline.py), after which a restart, as a supervisor's, goes on. A read_committed
reader then sees every input's output exactly once, and SIGTERM stops the worker cleanly."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.test_worker_exactly_once_kafka import EOS, all_committed, images, output_ids, repository
from tests.test_worker_stays_up_kafka import private_broker
from tests.worker_harness import committed, wait_for, worker_settings
from tooling.chaos import ReadyWatch, free_port
from tooling.kafka import PATIENT, SteadyStream
from tooling.process import start_worker_process

pytestmark = pytest.mark.integration

TRANSACTION_TIMEOUT_MS = 60_000  # the default; the deadline for a stuck call is this plus 5 s


class Supervised:
    """A worker process restarted, as a supervisor would, whenever it exits; every exit is kept with
    its code and the last lines of its log."""

    def __init__(self, settings, folder: Path) -> None:
        self.settings, self.folder = settings, folder
        self.exits: list[tuple[int, str]] = []
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        self.log = self.folder / f"worker-{len(self.exits)}.log"
        with self.log.open("w") as out:
            return start_worker_process(self.settings, stdout=out, stderr=subprocess.STDOUT, text=True)

    def watch(self) -> bool:
        """Restart the worker if it exited; True (for wait_for) never."""
        if self.proc.poll() is not None:
            self.exits.append((self.proc.returncode, self.log.read_text()[-2000:]))
            self.proc = self._start()
        return False

    def until(self, condition, timeout_s: float) -> bool:
        return wait_for(lambda: self.watch() or condition(), timeout_s)


def test_an_exactly_once_worker_through_a_broker_outage_does_not_hang_and_gives_each_output_once(
    tmp_path, tiny_bundle
) -> None:
    broker, topics = private_broker(tmp_path)
    bootstrap = broker.bootstrap_servers
    port = free_port()
    # A stable transactional.id (a StatefulSet's pod name, a host's name): a restart aborts at once what
    # the worker before it left open. The session outlives the outage, as the default does.
    settings = worker_settings(bootstrap, repository(tiny_bundle), topics, **EOS, max_batch=16,
                               commit_interval_ms=300, session_timeout_ms=30_000, metrics_port=port,
                               transactional_id="outage-worker")  # fmt: skip
    # Its producer waits out the outage (nothing it was given is dropped), so `sent` is what the
    # topic holds once it is stopped.
    stream = SteadyStream(bootstrap, topics["input"], lambda i: images(1, "outage", start=i)[0], 20,
                          **PATIENT)  # fmt: skip
    worker = Supervised(settings, tmp_path)
    try:  # the stream stops before the outage ends, so its producer's flush waits for the broker
        assert worker.until(lambda: committed(bootstrap, topics["group"], topics["input"]), 120)
        watch = ReadyWatch(port, time.monotonic())
        time.sleep(2)
        down_at = time.monotonic() - watch.t0
        broker.stop()
        time.sleep(15)
        broker.start()
        up_at = time.monotonic() - watch.t0
        time.sleep(5)
        stream.stop()
        # Going on, or an exit within the deadline and a restart: all committed well within this.
        done = worker.until(lambda: all_committed(bootstrap, topics), TRANSACTION_TIMEOUT_MS / 1000 + 150)
        assert done, worker.log.read_text()[-3000:]
        worker.proc.terminate()
        code = worker.proc.wait(60)
        seen = output_ids(bootstrap, topics)
    finally:
        worker.proc.kill()
        broker.stop()
    last = worker.log.read_text()
    assert code == 0 and "stopped cleanly" in last, last[-3000:]
    # Not ready while it cannot commit: during the outage if a transaction was open then, else when
    # the first call after it is stuck or fails (a worker whose last transaction committed before the
    # broker went has nothing to commit until records come again); ready again once all went through.
    not_ready = watch.first(503, down_at)
    assert not_ready is not None, watch.changes
    assert watch.first(200, not_ready) is not None, watch.changes
    for rc, tail in worker.exits:  # each exit: 1, and a line that says what was stuck or failed
        assert rc == 1 and "stopping without committing" in tail, tail
    assert set(seen) == {f"outage/{i}" for i in range(stream.sent)}  # none missing, no dead letter
    assert [i for i, n in seen.items() if n > 1] == []  # none twice
    print(f"outage: {stream.sent} records, /readyz 503 {not_ready - down_at:.1f} s after the broker "
          f"stopped (back after {up_at - down_at:.1f} s); exits {[rc for rc, _ in worker.exits]}; "
          f"readiness {watch.changes}")
    for rc, tail in worker.exits:
        print(f"exit {rc}: {tail.splitlines()[-1]}")

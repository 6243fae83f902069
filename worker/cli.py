"""`python -m worker`: settings and logging, the worker (worker/build.py), signals; then the loop.

Every failure a user can fix ends in one line that says what to do (exit 1, or 2 for bad
options, for Kafka security settings that do not fit the broker and for a --device this machine
cannot give); the traceback goes to the debug log.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from types import FrameType

from schemas.settings import SettingsError, load_settings
from worker import logs
from worker.app import Worker
from worker.build import build_worker
from worker.checkpoint import DeliveryError
from worker.deadline import CallStuck
from worker.kafka.protocol import KafkaConfigError, ProducerFenced, StartupError
from worker.serving.device import DeviceError
from worker.serving.registry import BundleError
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def install_signals(worker: Worker) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if worker.health.stopping:
            log.warning("second %s: exiting now, without draining", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class StopDuringStartup(BaseException):  # not an Exception: no `except Exception` on the way swallows it
    """SIGTERM or SIGINT before the worker consumed anything (loading models, waiting for Kafka)."""


def install_startup_signals() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise StopDuringStartup(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


IMAGE_SWITCH_INTERVAL_MS = 0.5
PYTHON_SWITCH_INTERVAL_MS = 5.0


def gil_switch_interval_ms(given: float | None, kinds: set[str]) -> float:
    """--gil-switch-interval-ms, or what suits the kinds served (docs/results.md#the-gil-switch-interval):
    images are bound by the scoring thread, which takes the GIL back after each onnxruntime call and
    drained faster with a short wait for it; metric points are bound by the loop's Python, which a
    short interval interrupts more often, and scored more windows/s at Python's own 5 ms."""
    if given is not None:
        return given
    return IMAGE_SWITCH_INTERVAL_MS if "image" in kinds else PYTHON_SWITCH_INTERVAL_MS


def freeze_startup_objects() -> None:
    """Keep what start-up made (modules, sessions, clients: most of the process's objects) out of every
    later garbage collection. A full collection holds the GIL, and so every thread, while it walks
    every tracked object: 19-24 ms over start-up's 59,000 on a 2-core machine, 197 ms mid-run on a busy
    one, a stall of every record in flight; after the freeze it walks only what was made since."""
    gc.collect()  # the garbage of start-up is freed, not frozen
    gc.freeze()


def run(s: WorkerSettings) -> int:
    for line in s.start_warnings():
        log.warning("%s", line)
    install_startup_signals()  # until the worker's own: a stop before it consumed anything
    try:
        worker = build_worker(s)
    except StopDuringStartup as exc:
        log.info("%s while starting: stopped before consuming anything", exc)
        return 0
    install_signals(worker)  # at once: from here a stop is the worker's own (the freeze below takes a while)
    interval_ms = gil_switch_interval_ms(s.gil_switch_interval_ms, {m.manifest.kind for m in worker.models})
    sys.setswitchinterval(interval_ms / 1000)
    log.info("GIL switch interval %g ms", interval_ms)
    freeze_startup_objects()
    log.info("consuming %s as group %s; alerts to %s", ",".join(s.topics), s.group_id, s.alerts_topic)
    worker.run()
    if worker.committed_at_stop:
        log.info("stopped cleanly: outputs flushed, offsets committed, group left")
    else:
        log.warning("stopped: outputs flushed, but the last commit did not go through; the records "
                    "after the previous commit will be read again (their alerts may repeat)")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        s = load_settings(WorkerSettings, argv)
    except SettingsError as exc:
        print(f"worker: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(s.log_level, s.log_json)
    try:
        return run(s)
    except (KafkaConfigError, DeviceError) as exc:  # a setting to change, as for a bad option
        log.debug("start-up failed", exc_info=True)
        log.error("%s", exc)
        return 2
    except (StartupError, BundleError) as exc:
        log.debug("start-up failed", exc_info=True)
        log.error("%s", exc)
        return 1
    except CallStuck as exc:  # exactly-once: a transactional call that never returned
        log.error("stopping without committing: %s", exc)
        # The client thread still inside that call can hold up the interpreter's exit (librdkafka's
        # destroy waits for it): leave at once, the log flushed.
        logging.shutdown()
        os._exit(1)
    except ProducerFenced as exc:  # exactly-once: another worker has this one's transactional.id
        log.error("stopping without committing: %s", exc)
        return 1
    except DeliveryError as exc:
        log.error("stopping without committing: %s; a restart re-reads from the last commit", exc)
        return 1
    except OSError as exc:  # what the system refuses otherwise (no file descriptors left, ...)
        log.debug("failed", exc_info=True)
        log.error("%s", exc)
        return 1
    except Exception as exc:  # a fault of the worker or a client: the last line still names it
        log.error("traceback of the error that stopped the worker:", exc_info=True)
        log.error("stopped by an unexpected error (a bug: please report it with the traceback above): "
                  "%s: %s; nothing more was committed, a restart re-reads from the last commit",
                  type(exc).__name__, exc)  # fmt: skip
        return 1

"""Client calls that may block in C past their own timeout run where they cannot freeze the worker.

librdkafka's transactional calls (send_offsets_to_transaction, commit_transaction, abort_transaction)
have been seen to block for good when the transaction coordinator goes away mid-call, whatever timeout
they were given (docs/internals.md#exactly-once). A C call on the main thread also keeps Python's signal
handlers from running, so such a worker ignored SIGTERM and /readyz stayed 200. Here the call runs on
a daemon thread of its own while the main thread waits in short slices: after a second the worker is
not ready (/readyz names the call); after `stuck_after_s` it says so at WARNING and SIGTERM ends the
wait; at the deadline the wait ends with CallStuck, which stops the worker with exit 1 (cli.py)
without touching the client again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from worker.checkpoint import DeliveryError
from worker.health import Health

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_READY_AFTER_S = 1.0  # a commit on a healthy broker takes milliseconds
STUCK_AFTER_S = 5.0  # said at WARNING, and SIGTERM ends the wait
WAIT_SLICE_S = 0.25


class CallStuck(DeliveryError):
    """A client call did not return by the worker's deadline, or the worker was told to stop while it
    waited: nothing more is committed, and the client must not be used again (it may still be inside
    the call)."""


def call_with_deadline(
    what: str,
    call: Callable[[], T],
    deadline_s: float,
    health: Health,
    stuck_after_s: float = STUCK_AFTER_S,
) -> T:
    """`call()`'s result (or its exception), or CallStuck once `deadline_s` has passed, or once the
    worker is stopping and the call has waited `stuck_after_s`."""
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"kafka-{what}", daemon=True).start()
    started = time.monotonic()
    said = False
    try:
        while not done.wait(WAIT_SLICE_S):
            waited = time.monotonic() - started
            if waited >= min(NOT_READY_AFTER_S, stuck_after_s):
                health.stuck_call = f"{what} has not returned for {waited:.0f} s"
            if waited >= stuck_after_s and not said:
                said = True
                log.warning("%s has not returned for %.0f s: is the transaction coordinator's broker up? "
                            "Waiting up to %.0f s, then exiting 1 (SIGTERM stops the wait)",
                            what, waited, deadline_s)  # fmt: skip
            if said and health.stopping:
                raise CallStuck(
                    f"told to stop while {what} had not returned for {waited:.0f} s; the transaction "
                    "stays open until the broker aborts it (or a restart fences it)"
                )
            if waited >= deadline_s:
                raise CallStuck(
                    f"{what} did not return within {deadline_s:.0f} s (the Kafka client does not give up "
                    "on its own when the transaction coordinator goes away); the broker aborts the "
                    "transaction, and a restart fences this producer and goes on from the last commit"
                )
    finally:
        if done.is_set():
            # Ready again only after a call that succeeded: one that failed is followed by an abort
            # and an exit, and a moment of 200 between the two would be a lie.
            failed = outcome.get("error")
            health.stuck_call = f"{what} failed: {failed}" if failed is not None else None
            if said:
                log.info("%s returned after %.1f s", what, time.monotonic() - started)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]

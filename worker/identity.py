"""Names a worker gives itself that must be unique among the workers running, and the same for a worker
restarted in a running one's place: the default transactional.id of exactly-once.

Two workers of one group on one host (two processes, or containers sharing a host name) would fence
each other with <group>-<host> alone, and under a supervisor take turns failing. Each takes the lowest
free slot on its host instead, held by a lock on a file that the kernel releases when the process dies
however it dies; so a restarted worker takes its predecessor's slot, and its name, back.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SLOTS_FOLDER = Path(tempfile.gettempdir()) / "anomaly-worker-slots"
MAX_SLOTS = 1024

_held: list[int] = []  # the lock files' descriptors, open (so locked) until the process exits


@functools.cache
def host_slot(name: str, folder: Path = SLOTS_FOLDER) -> int:
    """The lowest slot number no other running process on this host holds for `name`, held by this
    process from now on (0 if no lock can be taken here: said at WARNING)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            fd = os.open(folder / f"{safe}.{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held.append(fd)
            return slot
    except OSError as exc:
        log.warning("cannot take a slot for %s in %s (%s): using 0; give each worker of this host its "
                    "own --transactional-id", name, folder, exc)  # fmt: skip
    return 0

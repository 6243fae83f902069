"""Record kinds as plug-ins: each module says what its kind of record needs beyond the common path
(worker/kinds/base.py). A new kind is one module here plus its line in KINDS."""

from __future__ import annotations

from worker.kinds.base import Held, RecordKind
from worker.kinds.image import ImageKind
from worker.kinds.metric import MetricKind
from worker.serving.registry import ModelRegistry
from worker.settings import WorkerSettings

KINDS: dict[str, type[RecordKind]] = {kind.name: kind for kind in (ImageKind, MetricKind)}

__all__ = ["KINDS", "Held", "RecordKind", "kinds_for"]


def kinds_for(models: ModelRegistry, settings: WorkerSettings) -> dict[str, RecordKind]:
    """The kind serving each loaded model, by model key ('name:version')."""
    return {m.key: KINDS[m.manifest.kind](m, settings) for m in models}

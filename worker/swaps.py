"""Checked model versions go into service here, on the loop's thread, between two batches: the
watcher (worker/serving/watch.py) checks them on its own thread and queues them; the loop takes them
once per turn (see worker/serving/watch.py's docstring for the whole path)."""

from __future__ import annotations

import logging
from contextlib import suppress

from worker.batch import Batcher
from worker.kinds import KINDS, RecordKind
from worker.metrics import Metrics
from worker.score import ScoreStage
from worker.serving.registry import LoadedModel, ModelRegistry
from worker.serving.watch import RepositoryWatcher
from worker.settings import WorkerSettings

log = logging.getLogger("worker.serving.watch")  # the swap's lines beside the watcher's, as before


class ModelSwaps:
    """The loop's side: puts the versions the watcher made ready into service, between batches."""

    def __init__(
        self, watcher: RepositoryWatcher | None, models: ModelRegistry, kinds: dict[str, RecordKind],
        batcher: Batcher, scoring: ScoreStage, metrics: Metrics, settings: WorkerSettings,
    ) -> None:  # fmt: skip
        self.watcher, self.models, self.kinds = watcher, models, kinds
        self.batcher, self.scoring, self.metrics, self.settings = batcher, scoring, metrics, settings
        self.retiring: list[LoadedModel] = []  # replaced, kept until their last batch is published

    def start(self) -> None:
        if self.watcher is not None:
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def apply(self) -> None:
        """Once per turn of the loop, between batches: the ready versions into service, and the
        replaced ones no batch uses any more let go."""
        if self.watcher is None:
            return
        for model in self.watcher.ready():
            self.swap(model)
        if self.retiring:
            in_use = {id(b.model) for b in [*self.batcher.open_batches(), *self.scoring.in_flight()]}
            for old in [m for m in self.retiring if id(m) not in in_use]:
                self.retiring.remove(old)
                log.info("released %s: its last batch is published", old.key)

    def swap(self, new: LoadedModel) -> None:
        kind = KINDS[new.manifest.kind](new, self.settings)
        old = self.models.resolve(new.manifest.name)
        if old is not None:
            old_kind = self.kinds.pop(old.key)
            formed = self.batcher.take(old.key)
            if formed is not None:  # scored by the version that formed it, before any of the new one
                self.scoring.submit(formed)
            old_kind.report(self.metrics)  # its totals so far, under its own key
            why = kind.carry_over(old_kind)
            if why:
                log.warning("%s: the series start afresh (they warm up again): %s", new.key, why)
            forget_model_metrics(self.metrics, old)
            self.retiring.append(old)
        self.models.replace(new)
        self.kinds[new.key] = kind
        show_model_metrics(self.metrics, new)
        log.info("%s in service%s (threshold %.3f on %s)", new.key, f", replacing {old.key}" if old else "",
                 new.manifest.threshold, new.providers[0])  # fmt: skip


def show_model_metrics(metrics: Metrics, m: LoadedModel) -> None:
    """The gauges of a version going into service: model_info, model_threshold, model_version."""
    metrics.model_threshold.labels(model=m.key).set(m.manifest.threshold)
    metrics.model_info.labels(m.manifest.name, m.manifest.version, m.providers[0]).set(1)
    version = m.manifest.version
    metrics.model_version.labels(model=m.manifest.name).set(int(version) if version.isdigit() else -1)
    metrics.model_versions_refused.labels(model=m.manifest.name)  # at 0, so increase() sees the first


def forget_model_metrics(metrics: Metrics, m: LoadedModel) -> None:
    """The gauges of a version leaving service; its counters stay (they only ever grow)."""
    with suppress(KeyError):
        metrics.model_info.remove(m.manifest.name, m.manifest.version, m.providers[0])
    for gauge in (metrics.model_threshold, metrics.series_active, metrics.series_warming):
        with suppress(KeyError):
            gauge.remove(m.key)

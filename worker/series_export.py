"""--export-series: the chosen metric series' last scored point, expected value and band as Prometheus
gauges, and their alerts as a counter, for a dashboard to draw the series with its band and mark its
alerts (deploy/grafana/dashboard.json, "Exported series").

Bounded on purpose: every exported series is five time series in Prometheus, so at most
--export-series-max series are chosen (the first that match), and a series leaves the export when its
window is no longer held here (evicted, or its partition moved to another worker), which frees its place.
The gauges are labelled by the model's name, not its version, so a line goes on through a swap.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Container
from contextlib import suppress
from fnmatch import fnmatchcase

import numpy as np

from schemas.detect import Decisions
from worker.metrics import Metrics

log = logging.getLogger(__name__)
_GAUGES = ("value", "expected", "lower", "upper")
_MATCH_CACHE = 10_000  # series keys whose match is remembered (cleared when full)


class SeriesExport:
    def __init__(self, patterns: str, most: int, model_name: str) -> None:
        self.patterns = tuple(p.strip() for p in patterns.split(",") if p.strip())
        self.most = most
        self.model_name = model_name
        self.chosen: set[str] = set()
        self._matches: dict[str, bool] = {}
        self._latest: dict[str, tuple[float, float, float, float]] = {}
        self._alerts: Counter[str] = Counter()
        self._new: list[str] = []
        self._warned = False

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def record(self, keys: list[str], values: np.ndarray, decisions: Decisions) -> None:
        """Note the scored points of a batch (in time order) whose series are exported."""
        for i, key in enumerate(keys):
            if not self._wanted(key):
                continue
            self._latest[key] = (float(values[i]), float(decisions.expected[i]), float(decisions.lower[i]),
                                 float(decisions.upper[i]))  # fmt: skip
            if decisions.alert[i]:
                self._alerts[key] += 1

    def report(self, metrics: Metrics, held: Container[str]) -> None:
        """Into the gauges; series no longer held here leave the export (and /metrics)."""
        m = self.model_name
        for key in self._new:  # at 0 from the start, so an increase() sees the first alert
            metrics.series_alerts.labels(model=m, series=key)
        self._new.clear()
        for key, numbers in self._latest.items():
            for name, number in zip(_GAUGES, numbers, strict=True):
                getattr(metrics, f"series_{name}").labels(model=m, series=key).set(number)
        for key, n in self._alerts.items():
            metrics.series_alerts.labels(model=m, series=key).inc(n)
        self._latest.clear()
        self._alerts.clear()
        for key in [k for k in self.chosen if k not in held]:
            self.chosen.discard(key)
            for name in (*_GAUGES, "alerts"):
                with suppress(KeyError):  # never reported (it left before the first report)
                    getattr(metrics, f"series_{name}").remove(m, key)

    def _wanted(self, key: str) -> bool:
        if key in self.chosen:
            return True
        matches = self._matches.get(key)
        if matches is None:
            if len(self._matches) >= _MATCH_CACHE:
                self._matches.clear()
            matches = self._matches[key] = any(fnmatchcase(key, p) for p in self.patterns)
        if not matches:
            return False
        if len(self.chosen) >= self.most:
            if not self._warned:
                log.warning("%s: more series match --export-series than --export-series-max (%d); %s and "
                            "others are not exported", self.model_name, self.most, key)  # fmt: skip
                self._warned = True
            return False
        self.chosen.add(key)
        self._new.append(key)
        return True

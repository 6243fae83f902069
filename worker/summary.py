"""One INFO line per interval that says what the worker did (--summary-interval-s), so a log read
between "assigned partitions" and a stop is not silent while records, alerts and dead letters go by:

  last 60 s: 1,728 records (28.8/s), 1,709 scored, 12 alerts, 7 dead letters (schema 5, too_large 2), lag 0

The figures are the worker's own Prometheus counters (worker/metrics.py), read as differences since
the line before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client.metrics import MetricWrapperBase

from worker.metrics import Metrics

log = logging.getLogger("worker")


def _totals(metric: MetricWrapperBase, by: str | None = None) -> dict[str, float]:
    """A counter's (or gauge's) value summed over its label sets, by the label `by` if given."""
    out: dict[str, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = sample.labels.get(by, "") if by else ""
            out[key] = out.get(key, 0.0) + sample.value
    return out


class Summary:
    """Logs the summary line once `interval_s` has passed since the last one (0: never)."""

    def __init__(
        self, metrics: Metrics, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics, self.interval_s, self.clock = metrics, interval_s, clock
        self._since = clock()
        self._before = self._read()

    def _read(self) -> dict[str, object]:
        m = self.metrics
        return {
            "records": sum(_totals(m.consumed).values()),
            "scored": sum(_totals(m.scored).values()),
            "alerts": sum(_totals(m.alerts).values()),
            "dead": _totals(m.dead_letters, by="reason"),
        }

    def tick(self) -> str | None:
        """The line, logged, if it is due; None otherwise. Cheap when not due (a clock read)."""
        now = self.clock()
        if self.interval_s <= 0 or now - self._since < self.interval_s:
            return None
        line = self.line(now)
        log.info("%s", line)
        return line

    def line(self, now: float) -> str:
        after, before = self._read(), self._before
        seconds = max(now - self._since, 1e-9)
        records = after["records"] - before["records"]
        dead = {r: n - before["dead"].get(r, 0.0) for r, n in after["dead"].items()}
        dead = {r: n for r, n in sorted(dead.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0}
        reasons = f" ({', '.join(f'{r} {n:,.0f}' for r, n in dead.items())})" if dead else ""
        lag = sum(_totals(self.metrics.consumer_lag).values())
        self._since, self._before = now, after
        scored, alerts = after["scored"] - before["scored"], after["alerts"] - before["alerts"]
        return (f"last {seconds:.0f} s: {records:,.0f} records ({records / seconds:,.1f}/s), "
                f"{scored:,.0f} scored, {alerts:,.0f} alerts, {sum(dead.values()):,.0f} dead letters"
                f"{reasons}, lag {lag:,.0f}")  # fmt: skip

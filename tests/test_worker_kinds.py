"""Record kinds (worker/kinds/): how a metric point becomes model input, is decided on, and what its
outputs carry; which kind serves which model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas import MetricPoint, metric_message
from tests.metric_bundles import write_last_point_bundle
from tests.worker_fakes import message
from worker.batch import Item
from worker.kinds import KINDS, Held, kinds_for
from worker.kinds.image import ImageKind
from worker.kinds.metric import MetricKind
from worker.registry import ModelRegistry
from worker.settings import WorkerSettings

W = 4
T0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def metric_kind(tmp_path_factory) -> MetricKind:
    repo = tmp_path_factory.mktemp("kinds")
    write_last_point_bundle(repo / "kpi-test" / "1", window=W)
    [kind] = kinds_for(ModelRegistry.load(repo, "cpu", None, None), WorkerSettings(metrics_port=0)).values()
    assert isinstance(kind, MetricKind)
    return kind


def prepared(kind: MetricKind, value: float, minute: int | None, offset: int):
    ts = None if minute is None else T0 + timedelta(minutes=minute)
    point = MetricPoint.model_validate_json(metric_message("cpu", value, labels={"host": "a"}, ts=ts)[1])
    return kind.prepare(message(b"", offset), point, f"in:0:{offset}")


def test_every_kind_a_manifest_can_name_has_its_module() -> None:
    from schemas import ModelManifest

    assert set(KINDS) == set(ModelManifest.model_fields["kind"].annotation.__args__)
    assert KINDS["image"] is ImageKind and KINDS["metric"] is MetricKind


def test_a_metric_point_is_held_until_its_window_is_full_then_keyed_and_described_by_its_series(
    metric_kind,
) -> None:
    held = [prepared(metric_kind, 1.0, m, m) for m in range(W - 1)]
    assert all(isinstance(h, Held) and h.why == "warming" for h in held)
    item = prepared(metric_kind, 5.0, None, W - 1)  # no ts: the alert names the point's grid time
    assert isinstance(item, Item) and item.row.shape == (W,)
    inputs, features = metric_kind.model_inputs(item.row[None, :])
    assert inputs.shape == (1, W) and inputs.dtype == np.float32
    verdicts = metric_kind.decide([item], np.array([9.0]), features)
    assert verdicts.decisions is not None and len(verdicts.alerts) == 1
    fields = metric_kind.output_fields(item, verdicts, 0)
    d = verdicts.decisions[0]
    assert metric_kind.output_key(item) == 'cpu{host="a"}'
    assert fields == {
        "series_key": 'cpu{host="a"}', "series": "cpu", "labels": {"host": "a"}, "value": 5.0, "window": W,
        "detector": d.part, "detector_score": d.part_score, "detector_threshold": d.part_threshold,
        "ts": T0 + timedelta(minutes=W - 1),
    }  # fmt: skip

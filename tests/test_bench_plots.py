"""The bench's figures are drawn from its measurements (the bench itself runs in `make bench`, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench import plots


def test_throughput_and_latency_figures_are_written(tmp_path: Path) -> None:
    bars = plots.throughput(
        {"(b) onnxruntime": 30_000.0, "(b1) batch 1": 15_000.0},
        {
            "kafka-python": {"(a) consume": 50_000.0, "(c) worker": 12_000.0, "(d) batch 1": 9_000.0},
            "confluent": {"(a) consume": 480_000.0, "(c) worker": 24_000.0, "(d) batch 1": 11_000.0},
        },
        tmp_path / "throughput.png",
    )
    lat = {"kafka-python": np.random.default_rng(0).lognormal(3.4, 0.5, 1000), "confluent": np.array([])}
    cdf = plots.latency_cdf(lat, 1000.0, tmp_path / "latency.png")
    for path in (bars, cdf):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 500 and image.height > 300

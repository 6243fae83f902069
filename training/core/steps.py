"""The steps of every training run after the fit, in one order for every kind of model.

export (and check torch/onnxruntime parity on real inputs) -> calibrate on the exported graph's
scores -> evaluate the exported graph -> report -> manifest. Calibration and evaluation both see
the bundle's own onnxruntime scores, as the worker will, never the torch model's. Everything is
written into a staging folder that becomes the bundle only when every step succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from schemas import MODEL_FILE, ModelManifest
from schemas.repository import staging_folder
from training.core.bundle import EVALUATION_FILE, HISTORY_FILE, json_text, write_manifest

if TYPE_CHECKING:
    from training.core.fit import FitResult

LOSS_CURVES_FILE = "loss_curves.png"


class BundleSteps(Protocol):
    """What one kind of model (images, KPI series) does at each step; each step may use what the
    earlier ones found (the calibration, the evaluation)."""

    def export(self, folder: Path) -> None:
        """Write the ONNX graph(s) into `folder` and check their scores against torch's (ParityError)."""

    def calibrate(self, model_path: Path) -> None:
        """Thresholds from the exported graph's scores of normal data."""

    def evaluate(self, model_path: Path) -> object:
        """Score the evaluation data with the exported graph; returns what evaluation.json holds."""

    def report(self, folder: Path) -> None:
        """Draw this kind's figures into `folder` (the loss curves are drawn for every kind)."""

    def manifest(self, files: dict[str, str]) -> ModelManifest:
        """The manifest, given the sha256 of every file in the bundle."""


def write_bundle(
    out: Path, steps: BundleSteps, fitted: FitResult, report: bool, log: Callable[[str], None] = print
) -> ModelManifest:
    """Run the steps after the fit into a staging folder that is renamed to `out` at the end."""
    with staging_folder(out) as folder:
        log("exporting to ONNX and checking torch/onnxruntime parity on real inputs")
        steps.export(folder)
        steps.calibrate(folder / MODEL_FILE)
        (folder / EVALUATION_FILE).write_text(json_text(steps.evaluate(folder / MODEL_FILE)))
        (folder / HISTORY_FILE).write_text(json_text(fitted.as_dict()))
        if report:
            log("drawing the report figures")
            from training.core.figures import loss_curves  # matplotlib only when figures are drawn

            loss_curves(fitted.history, fitted.best_epoch, folder / LOSS_CURVES_FILE)
            steps.report(folder)
        return write_manifest(folder, steps.manifest)

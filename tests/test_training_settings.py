"""Typed settings per kind of training: which model `train` parses, and the fit config built from it."""

from __future__ import annotations

import pytest

from schemas.settings import SettingsError
from training.settings import ImageTrainSettings, KpiTrainSettings, TrainSettings, train_settings_for


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, ImageTrainSettings),
        (["--epochs", "3"], None, ImageTrainSettings),
        (["--dataset", "csv", "--data", "x.csv"], None, KpiTrainSettings),
        (["--dataset=csv"], None, KpiTrainSettings),
        ([], "csv", KpiTrainSettings),
        (["--dataset", "mnist"], "csv", ImageTrainSettings),  # the flag wins over the variable
    ],
)
def test_train_parses_the_settings_of_the_dataset_it_is_given(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: type
) -> None:
    if env is None:
        monkeypatch.delenv("TRAINING_DATASET", raising=False)
    else:
        monkeypatch.setenv("TRAINING_DATASET", env)
    assert train_settings_for(argv) is expected


def test_an_unknown_dataset_names_the_flag_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINING_DATASET", raising=False)
    with pytest.raises(SettingsError) as err:
        train_settings_for(["--dataset", "parquet"])
    assert "--dataset / TRAINING_DATASET" in err.value.message and "mnist or csv" in err.value.message


def test_both_kinds_share_the_common_options_and_only_those() -> None:
    common = set(TrainSettings.model_fields)
    image, kpi = set(ImageTrainSettings.model_fields), set(KpiTrainSettings.model_fields)
    assert common < image and common < kpi
    assert image & kpi == common | {"dataset"}


def test_fit_config_takes_every_option_of_its_name_and_resolves_the_device() -> None:
    from dataclasses import fields

    from training.core.fit import FitConfig
    from training.kpi.fit import KpiFitConfig

    s = KpiTrainSettings(epochs=3, lr=0.01, batch_size=64, missing_injection=0.02, device="auto")
    cfg = KpiFitConfig.from_settings(s)
    for f in fields(KpiFitConfig):
        if f.name in KpiTrainSettings.model_fields and f.name != "device":
            assert getattr(cfg, f.name) == getattr(s, f.name), f.name
    assert cfg.device in {"cpu", "cuda"} and cfg.epoch_windows == KpiFitConfig.epoch_windows
    image = FitConfig.from_settings(ImageTrainSettings(weight_decay=0.1))
    assert image.weight_decay == 0.1 and image.device == "cpu"


def test_an_option_of_the_other_kind_of_training_asks_did_you_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINING_DATASET", raising=False)
    with pytest.raises(SettingsError) as caught:
        train_settings_for(["--data", "kpi.csv", "--epochs", "3"])
    assert caught.value.message == (
        "--data is an option of --dataset csv training, and this is --dataset mnist: did you mean "
        "`python -m training train --dataset csv --data ...`?"
    )
    assert train_settings_for(["--dataset", "csv", "--data=kpi.csv"]) is KpiTrainSettings


def test_help_shows_readable_types_and_no_null_defaults() -> None:
    import subprocess
    import sys

    for argv in (["-m", "worker", "--help"], ["-m", "training", "train", "--dataset", "csv", "--help"]):
        text = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=True).stdout
        assert "null" not in text and "SecretStr" not in text, text
    worker = subprocess.run([sys.executable, "-m", "worker", "--help"], capture_output=True, text=True).stdout
    assert "[--sasl-password str]" in worker and "[--transactional-id str]" in worker


def test_make_kafka_status_says_not_running_without_a_make_error(tmp_path) -> None:
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["deploy/kafka/kafka.sh", "status", "--home", str(tmp_path / "none")], cwd=repo,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 3 and "not running" in done.stdout  # the script's own answer
    done = subprocess.run(["make", "-s", "kafka-status"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0 and "running" in done.stdout and "Error" not in done.stderr, done


def test_the_verdict_on_unlabelled_data_says_so_instead_of_nan() -> None:
    from training.kpi.evaluate import DetectorReport
    from training.kpi.pipeline import KpiEvaluation

    nan = float("nan")
    names = ("detector", "zscore", "hampel")
    reports = [DetectorReport(name, {"standard": nan}, nan, None) for name in names]
    verdict = KpiEvaluation(reports, {}, "the test part of 3 series").verdict()
    assert "nan" not in verdict and verdict.startswith("no labelled anomalies in the test part of 3 series")

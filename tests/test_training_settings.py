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

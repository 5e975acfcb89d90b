"""The shipped training configs: the study's settings as published, and each one runnable."""

from __future__ import annotations

from pathlib import Path

import pytest

from beatlab.training.config import load_config
from beatlab.training.run import train_run
from beatlab.training.runs import CHECKPOINT

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN_CONFIGS = [
    CONFIGS / "demo.toml",
    CONFIGS / "new_patients.toml",
    CONFIGS / "new_patients_trees.toml",
    *sorted((CONFIGS / "study").glob("*.toml")),
]


def test_study_configs_hold_the_studys_settings() -> None:
    cnn2d = load_config(CONFIGS / "study" / "cnn2d_resnet.toml")
    assert (cnn2d.model, cnn2d.balance) == ("cnn2d_resnet", "oversample")
    assert (cnn2d.batch_size, cnn2d.factor, cnn2d.epochs) == (16, 0.2, 30)
    assert cnn2d.hparams == {"hidden": 128, "dropout": 0.3, "num_layers": 3, "num_blocks": 1}
    gru = load_config(CONFIGS / "study" / "cnn1d_gru.toml")  # the row 0.9849 / 0.9769
    assert (gru.model, gru.balance) == ("cnn1d_gru", "smote")
    assert (gru.batch_size, gru.factor, gru.epochs) == (16, 0.3, 30)
    assert gru.hparams == {
        "hidden": 64,
        "dropout": 0.2,
        "num_layers": 4,
        "num_blocks": 4,
        "gru_hidden": 256,
    }
    first = load_config(CONFIGS / "study" / "cnn1d_gru_row1.toml")  # the row 0.9858 / 0.9593
    assert (first.batch_size, first.factor) == (32, 0.2)
    assert first.hparams == {
        "hidden": 64,
        "dropout": 0.4,
        "num_layers": 2,
        "num_blocks": 5,
        "gru_hidden": 256,
    }


def test_demo_config_weights_rare_classes_damped() -> None:
    demo = load_config(CONFIGS / "demo.toml")
    assert (demo.split, demo.balance, demo.class_weight_power) == ("intra", "weights", 0.5)
    assert demo.hparams == {"use_rr": True}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_config_trains(path: Path, real_data_dir: Path, tmp_path: Path) -> None:
    config = load_config(path).updated({"limit": 300, "epochs": 1, "data_dir": str(real_data_dir)})
    run = train_run(config, tmp_path, name=path.stem, tracking_uri="none", progress=False)
    assert (run / CHECKPOINT).is_file()
    assert load_config(run / "config.json").model == load_config(path).model


def test_new_patients_config_is_patient_wise_and_augmented() -> None:
    config = load_config(CONFIGS / "new_patients.toml")
    assert (config.split, config.layout, config.db) == ("inter", "deviation_aligned", "mitdb")
    assert config.augment_jitter > 0 and config.augment_scale > 0
    assert config.hparams["use_rr"] and config.hparams["rr_norm"]

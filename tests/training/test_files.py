"""Bring your own beats: training, evaluation and transfer on the real Kaggle / course files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from beatlab.training.config import TrainConfig
from beatlab.training.data import dataset_for
from beatlab.training.run import train_run


@pytest.fixture(scope="module")
def arrhythmia_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TrainConfig(data_dir=str(real_data_dir), epochs=1, limit=500, batch_size=64)
    return train_run(
        config, tmp_path_factory.mktemp("runs"), name="mitbih", tracking_uri="none", progress=False
    )


def test_ptb_parquet_dataset_is_binary_and_carved(real_formats: Path) -> None:
    ds = dataset_for(
        TrainConfig(train_file=str(real_formats / "heart_test.parq"), balance="smote", seed=1)
    )
    assert ds.classes == ("normal", "abnormal")
    assert len(ds.test) == 583 and len(ds.valid) == 233  # 20 % test, then 10 % validation
    assert ds.train.counts(2)[0] == ds.train.counts(2)[1]  # SMOTE on the training part only
    assert ds.meta["source"] == "files" and ds.meta["balance"] == "smote"


def test_train_and_evaluate_on_ptb_parquet(
    real_formats: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "train",
        "--train-file",
        str(real_formats / "heart_test.parq"),
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "ptb",
        "--tracking-uri",
        "none",
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "evaluate", str(tmp_path / "ptb"), "--tracking-uri", "none")
    assert code == 0 and "roc_auc" in out
    test = json.loads((tmp_path / "ptb" / "metrics.json").read_text())["test"]
    assert test["classes"] == ["normal", "abnormal"] and test["n"] == 583
    assert 0.0 <= test["roc_auc"] <= 1.0 and {"sensitivity", "specificity"} <= set(test)


def test_ptb_csv_pair_is_one_dataset(real_formats: Path, tmp_path: Path) -> None:
    pair = (
        f"{real_formats / 'ptbdb_normal_sample.csv'},{real_formats / 'ptbdb_abnormal_sample.csv'}"
    )
    ds = dataset_for(TrainConfig(train_file=pair))
    assert ds.classes == ("normal", "abnormal")
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 200
    assert sorted(set(ds.test.y.tolist())) == [0, 1]


def test_transfer_with_frozen_backbone(
    arrhythmia_run: Path, real_formats: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "train",
        "--init-from",
        str(arrhythmia_run),
        "--freeze-backbone",
        "--train-file",
        str(real_formats / "heart_test.parq"),
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "transfer",
        "--tracking-uri",
        "none",
    )
    assert code == 0, err
    source = load_file(str(arrhythmia_run / "model.safetensors"))
    tuned = load_file(str(tmp_path / "transfer" / "model.safetensors"))
    assert tuned["head.weight"].shape[0] == 2 and source["head.weight"].shape[0] == 5
    backbone = [k for k in source if not k.startswith("head.")]
    trainable = [k for k in backbone if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(source[k], tuned[k]) for k in trainable)
    config = json.loads((tmp_path / "transfer" / "config.json").read_text())
    assert config["init_from"] == str(arrhythmia_run) and config["freeze_backbone"] is True


def test_evaluate_on_a_file(
    real_formats: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = (
        f"{real_formats / 'ptbdb_normal_sample.csv'},{real_formats / 'ptbdb_abnormal_sample.csv'}"
    )
    run = train_run(
        TrainConfig(train_file=pair, epochs=1),
        tmp_path,
        name="pair",
        tracking_uri="none",
        progress=False,
    )
    code, out, err = run_cli(
        capsys,
        "evaluate",
        str(run),
        "--test-file",
        str(real_formats / "heart_test.parq"),
        "--tracking-uri",
        "none",
    )
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())["file:heart_test.parq"]
    assert metrics["n"] == 2_911 and 0.0 <= metrics["roc_auc"] <= 1.0


def test_file_with_labels_of_another_task(
    arrhythmia_run: Path, real_formats: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "evaluate",
        str(arrhythmia_run),
        "--test-file",
        str(real_formats / "heart_test.parq"),
        "--tracking-uri",
        "none",
    )
    assert code == 2 and err.count("\n") == 1
    assert "heart_test.parq" in err and "2-class task" in err

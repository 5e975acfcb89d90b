"""Training, evaluation and run directories, on small slices of the real beats."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from beatlab import CLASSES
from beatlab.data.databases import MITDB
from beatlab.data.dataset import load_dataset
from beatlab.errors import BeatlabError
from beatlab.models import create_model, list_models
from beatlab.training.config import TrainConfig, load_config
from beatlab.training.estimator import BeatClassifier
from beatlab.training.metrics import classification_metrics, measured_recall
from beatlab.training.run import evaluate_run, loss_weights, train_run
from beatlab.training.runs import load_run
from beatlab.training.trainer import EVAL_BATCH, Tensors, predict_proba

TINY = {"limit": 600, "epochs": 2, "batch_size": 64}


def tiny(real_data_dir: Path, **values: object) -> TrainConfig:
    return TrainConfig(data_dir=str(real_data_dir)).updated({**TINY, **values})


def test_same_seed_same_metrics(real_data_dir: Path, tmp_path: Path) -> None:
    config = tiny(real_data_dir, model="cnn1d_resnet", seed=3)
    a = train_run(config, tmp_path, name="a", tracking_uri="none", progress=False)
    b = train_run(config, tmp_path, name="b", tracking_uri="none", progress=False)
    assert metrics_of(a) == metrics_of(b)
    weights = [load_file(str(run / "model.safetensors")) for run in (a, b)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    c = train_run(
        config.updated({"seed": 4}), tmp_path, name="c", tracking_uri="none", progress=False
    )
    assert metrics_of(a) != metrics_of(c)


def test_decision_weights_leave_training_alone_and_weigh_the_trained_model(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny(real_data_dir, model="cnn1d_resnet", use_rr=True)
    plain = train_run(config, tmp_path, name="plain", tracking_uri="none", progress=False)
    weights = [1, 50, 1, 1, 1]
    config = config.updated({"hparams": {"decision_weights": weights}})
    weighted = train_run(config, tmp_path, name="weighted", tracking_uri="none", progress=False)
    assert metrics_of(plain) == metrics_of(weighted)  # validation decided by plain argmax
    evaluate_run(plain, tracking_uri="none")
    code, out, _ = run_cli(capsys, "evaluate", str(weighted), "--tracking-uri", "none")
    assert code == 0 and "deciding with S ×50 on the class probabilities" in out
    tests = [json.loads((run / "metrics.json").read_text())["test"] for run in (plain, weighted)]
    assert tests[1]["per_class"]["S"]["Se"] > tests[0]["per_class"]["S"]["Se"]
    models = [load_run(run).model.eval() for run in (plain, weighted)]
    x, rr = torch.randn(8, 187), torch.rand(8, 3) + 0.5
    with torch.inference_mode():
        shift = models[1](x, rr) - models[0](x, rr)
    assert torch.allclose(shift, torch.log(torch.tensor(weights, dtype=torch.float32)), atol=1e-5)


def metrics_of(run: Path) -> list[dict[str, float]]:
    """Per-epoch metrics without the wall-clock columns."""
    history = pd.read_csv(run / "history.csv").drop(columns=["seconds", "val_seconds"])
    return history.to_dict("records")


def test_class_weight_power_damps_balanced_weights(real_data_dir: Path) -> None:
    weighted = load_dataset(real_data_dir, balance="weights")
    full = loss_weights(weighted, TrainConfig())
    damped = loss_weights(weighted, TrainConfig(class_weight_power=0.5))
    assert full is not None and max(full) > 10  # F: ~800 of ~110,000 beats
    assert damped == pytest.approx(np.sqrt(full))
    assert loss_weights(load_dataset(real_data_dir), TrainConfig(class_weight_power=0.5)) is None


def test_run_directory_and_rerun_from_saved_config(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "train",
        "--model",
        "transformer2d",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--set",
        "hidden=32",
        "--set",
        "batch=32",
        "--data-dir",
        str(real_data_dir),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "first",
        "--tracking-uri",
        "none",
    )
    assert code == 0 and "validation accuracy" in out
    run = tmp_path / "first"
    for name in (
        "config.json",
        "run.json",
        "history.csv",
        "metrics.json",
        "model.safetensors",
        "learning_curves.png",
    ):
        assert (run / name).is_file(), name
    config = load_config(run / "config.json")
    assert config.hparams["hidden"] == 32 and config.batch_size == 32
    assert config.hparams["heads"] == 4  # defaults are saved too, so the run rebuilds exactly
    code, _, _ = run_cli(
        capsys,
        "train",
        "--config",
        str(run / "config.json"),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "again",
        "--tracking-uri",
        "none",
    )
    assert code == 0
    first = json.loads((run / "metrics.json").read_text())["valid"]
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["valid"]
    assert first == again


def test_evaluate_writes_test_metrics(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_run(tiny(real_data_dir), tmp_path, name="ev", tracking_uri="none", progress=False)
    code, out, _ = run_cli(capsys, "evaluate", str(run), "--tracking-uri", "none")
    assert code == 0 and "confusion matrix" in out and "Se" in out
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert set(metrics) == {"valid", "test"} and test["n"] == 21_899
    assert set(test["per_class"]["V"]) == {"Se", "+P", "Sp", "F1", "support"}
    assert np.array(test["confusion_matrix"]).sum() == 21_899
    assert (run / "confusion_test.png").is_file()


def test_training_never_reads_the_test_part(real_data_dir: Path, tmp_path: Path) -> None:
    config = tiny(real_data_dir, epochs=1)
    ds = load_dataset(real_data_dir)
    ds.test.x[:] = np.nan  # any use of a test beat in training or selection would show
    from beatlab.training.data import dataset_for

    limited = dataset_for(config)
    limited.test = ds.test
    run = train_run(
        config, tmp_path, name="blind", tracking_uri="none", dataset=limited, progress=False
    )
    valid = json.loads((run / "metrics.json").read_text())["valid"]
    assert np.isfinite(valid["accuracy"])


def test_early_stopping_on_validation_recall(real_data_dir: Path, tmp_path: Path) -> None:
    config = tiny(real_data_dir, epochs=6, lr=1e-30, early_stopping=2)  # lr must be > 0
    run = train_run(config, tmp_path, name="stop", tracking_uri="none", progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["epochs_run"] == 3 and info["best_epoch"] == 1


def test_measured_recall_leaves_out_classes_too_rare_to_measure(
    real_data_dir: Path, tmp_path: Path
) -> None:
    """60 N beats all right, 50 S beats half right, 3 V beats all wrong: macro recall counts the
    three V beats as a third; the measured recall counts only N and S."""
    y = np.array([0] * 60 + [1] * 50 + [2] * 3)
    said = np.array([0] * 60 + [1] * 25 + [0] * 25 + [0] * 3)
    metrics = classification_metrics(y, np.eye(5)[said], CLASSES)
    assert metrics["macro_recall"] == pytest.approx(0.5)
    assert measured_recall(metrics) == pytest.approx(0.75)
    assert measured_recall(metrics, least=100) == pytest.approx(0.5)  # none has: all present
    config = tiny(real_data_dir, epochs=1, monitor="val_measured_recall")
    run = train_run(config, tmp_path, name="measured", tracking_uri="none", progress=False)
    row = pd.read_csv(run / "history.csv").iloc[0]
    assert 0.0 <= row["val_measured_recall"] <= 1.0


def test_without_validation_every_epoch_trains_and_the_last_is_kept(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate=false: no validation part, no early stopping even where validation would have
    stopped it (lr ~ 0, patience 1), the last epoch kept; the run still reports and evaluates."""
    code, out, err = run_cli(
        capsys,
        "train",
        *("--split", "inter", "--data-dir", str(real_data_dir), "--runs-dir", str(tmp_path)),
        *("--name", "all", "--tracking-uri", "none", "--set", "validate=false"),
        *("--set", "limit=600", "--set", "epochs=3", "--set", "early_stopping=1"),
        *("--set", "lr=1e-30"),
    )
    assert code == 0, err
    assert "no validation part: the last epoch is kept" in out
    run = tmp_path / "all"
    info = json.loads((run / "run.json").read_text())
    assert (info["epochs_run"], info["best_epoch"], info["valid_beats"]) == (3, 3, 0)
    assert json.loads((run / "metrics.json").read_text())["valid"] == {}
    history = pd.read_csv(run / "history.csv")
    assert history["val_loss"].isna().all() and history["train_loss"].notna().all()
    test = evaluate_run(run, "test")
    assert test["n"] == len(load_dataset(real_data_dir, split="inter").test)  # DS2, whole
    rows = test["per_record"]  # new patients: where the misses are, patient by patient
    assert [r["record"] for r in rows] == sorted(MITDB.splits["inter"].test)
    assert sum(r["beats"] for r in rows) == test["n"]
    assert sum(r["S ref"] for r in rows) == test["per_class"]["S"]["support"]
    code, _, err = run_cli(capsys, "report", str(run), "--out", str(tmp_path / "report"))
    assert code == 0, err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "per record: reference beats" in report and "| 232 |" in report


def test_mlflow_logs_the_run(real_data_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_run(
        tiny(real_data_dir, epochs=1), tmp_path, name="tracked", tracking_uri=uri, progress=False
    )
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the run's store does not leak into the next
    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("beatlab-train").experiment_id]
    )
    assert [r.info.run_name for r in runs] == ["tracked"]
    assert runs[0].data.params["model"] == "cnn1d_resnet"
    assert "val_macro_recall" in runs[0].data.metrics
    assert list((tmp_path / "mlartifacts").rglob("model.safetensors"))  # beside the store


def test_estimator_follows_sklearn(real_data_dir: Path) -> None:
    from sklearn.base import clone

    ds = load_dataset(real_data_dir)
    clf = BeatClassifier(epochs=1, batch_size=64)
    assert clone(clf).get_params()["epochs"] == 1
    pick = np.random.default_rng(0).choice(len(ds.train), 800, replace=False)
    clf.fit(ds.train.x[pick], ds.train.y[pick])
    assert clf.predict_proba(ds.test.x[:50]).shape == (50, 5)
    assert 0.0 <= clf.score(ds.test.x[:200], ds.test.y[:200]) <= 1.0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--model", "resnet9000"], "unknown model 'resnet9000'"),
        (["--set", "hiden=3"], "unknown hyperparameter 'hiden'"),
        (["--set", "filters=many"], "must be an int"),
        (["--set", "epochs=2.5"], "'epochs' must be int"),
        (["--set", "valid_fold=0"], "'valid_fold' needs patient-wise validation"),
        (["--split", "inter", "--set", "valid_fold=5"], "a patient fold from 0 to 4"),
        (["--set", "ema_decay=1"], "'ema_decay' must be a number from 0 up to"),
        (
            ["--split", "inter", "--set", "validate=false", "--set", "valid_fold=0"],
            "'validate = false' leaves no validation part for valid_fold",
        ),
    ],
)
def test_bad_training_input(
    real_data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    problem: str,
) -> None:
    code, _, err = run_cli(
        capsys,
        "train",
        *args,
        "--data-dir",
        str(real_data_dir),
        "--runs-dir",
        str(tmp_path),
        "--tracking-uri",
        "none",
    )
    assert code == 2 and problem in err and err.count("\n") == 1
    assert not any(tmp_path.glob("*/model.safetensors"))


def test_bad_model_fails_before_the_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "no-data"  # no database here: the model error must come first
    args = ("--data-dir", str(empty), "--runs-dir", str(tmp_path), "--tracking-uri", "none")
    code, _, err = run_cli(capsys, "train", "--model", "cnn1d_resnt", *args)
    assert code == 2 and "unknown model 'cnn1d_resnt'; did you mean 'cnn1d_resnet'?" in err
    code, _, err = run_cli(capsys, "train", "--set", "hiden=3", *args)
    assert code == 2 and "unknown hyperparameter 'hiden'" in err


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("model = cnn1d_resnet\n")  # unquoted string: not TOML
    code, _, err = run_cli(capsys, "train", "--config", str(config))
    assert code == 2 and "broken.toml: config does not parse" in err


def test_checkpoint_of_another_architecture(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = train_run(
        tiny(real_data_dir, epochs=1), tmp_path, name="a", tracking_uri="none", progress=False
    )
    b = train_run(
        tiny(real_data_dir, epochs=1, model="transformer2d"),
        tmp_path,
        name="b",
        tracking_uri="none",
        progress=False,
    )
    shutil.copy(b / "model.safetensors", a / "model.safetensors")
    with pytest.raises(BeatlabError, match="does not fit model 'cnn1d_resnet'"):
        load_run(a)
    code, _, err = run_cli(capsys, "evaluate", str(a), "--tracking-uri", "none")
    assert code == 2 and "model.safetensors" in err and err.count("\n") == 1


def test_evaluate_reports_runs_without_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path / "nothing"))
    assert code == 2 and "no such run directory" in err
    assert evaluate_run  # imported for the API's sake: evaluate is the only test-part reader


@pytest.mark.parametrize("name", list_models())
def test_probabilities_do_not_depend_on_the_inference_batch(name: str) -> None:
    """`predict_proba` reads `EVAL_BATCH` beats a batch, chosen for speed alone
    (`benchmarks/eval_batch.py`): every model gives the same classes in batches of 512 as in one
    of 1,100 beats, and the same probabilities to float rounding (here, bit for bit)."""
    torch.manual_seed(0)
    model = create_model(name)
    data = Tensors(
        torch.randn(1100, *model.beat_shape),
        torch.zeros(1100, dtype=torch.int64),
        torch.randn(1100, 3),
    )
    batched, whole = predict_proba(model, data, EVAL_BATCH), predict_proba(model, data, 1100)
    assert EVAL_BATCH < 1100
    np.testing.assert_allclose(batched, whole, atol=1e-6)
    np.testing.assert_array_equal(batched.argmax(1), whole.argmax(1))

"""`beatlab tune` end to end on tiny slices of the real beats: interrupted, resumed, reported."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_cli
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis
from safetensors.torch import load_file

from beatlab.data.databases import MITDB
from beatlab.data.dataset import load_dataset
from beatlab.training.config import load_config
from beatlab.training.data import dataset_for

TINY_SPACE = """\
batch = {choice = [32, 64]}
filters = 8
dense = 16
num_blocks = {randint = [2, 3]}
dropout = {uniform = [0.0, 0.3]}
training_set = {choice = ["oversample", "weights"]}
"""
TINY = ["--model", "cnn1d_resnet", "--max-epochs", "2", "--limit", "300"]
DS1 = MITDB.splits["inter"].train
SAMPLES = 6  # trials take seconds: enough of them that Ctrl+C lands before the last is done


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(TINY_SPACE)
    return path


def interrupt_after_first_trial(exp_dir: Path) -> threading.Thread:
    """Press Ctrl+C (SIGINT to this process) once a second trial has saved its checkpoint: with
    one trial at a time, Tune has then recorded the first as finished. (Checkpoints are written
    straight to the experiment directory; Tune copies its other files there only now and then.)"""

    def watch() -> None:
        deadline = time.monotonic() + 1200  # a loaded machine starts Ray slowly (it took 300 s)
        while time.monotonic() < deadline:
            if len(list(exp_dir.glob("*/checkpoint_000000/model.safetensors"))) >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def finished_trials(exp_dir: Path) -> dict[str, tuple[str, float | None]]:
    """Trials Tune recorded as finished, by id: their results and checkpoint time (ASHA may
    have stopped one before it wrote a checkpoint)."""
    snapshot = {}
    for trial in ExperimentAnalysis(str(exp_dir)).trials:
        if trial.status == "TERMINATED":
            folder = exp_dir / trial.trial_id
            model = folder / "checkpoint_000000" / "model.safetensors"
            results = (folder / "result.json").read_text()
            snapshot[trial.trial_id] = (results, model.stat().st_mtime if model.exists() else None)
    return snapshot


def test_interrupted_search_resumes_and_tests_the_best_once(
    real_data_dir: Path, tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiments = tmp_path / "experiments"
    exp_dir = experiments / "tiny"
    watcher = interrupt_after_first_trial(exp_dir)
    code, out, _ = run_cli(
        capsys,
        "tune",
        *TINY,
        "--space",
        str(tiny_space),
        "--search",
        "hyperopt",
        "--scheduler",
        "asha",
        "--samples",
        str(SAMPLES),
        "--concurrency",
        "1",
        "--name",
        "tiny",
        "--experiments-dir",
        str(experiments),
        "--data-dir",
        str(real_data_dir),
    )
    watcher.join(timeout=1)
    assert code == 130, out
    assert f"Continue with: beatlab tune --resume {exp_dir}\n" in out
    assert not (exp_dir / "results.csv").exists()
    before = finished_trials(exp_dir)
    assert 1 <= len(before) < SAMPLES

    code, out, _ = run_cli(capsys, "tune", "--resume", str(exp_dir))
    assert code == 0, out
    assert f"{SAMPLES} of {SAMPLES} trials finished, 0 failed" in out

    after = finished_trials(exp_dir)
    assert len(after) == SAMPLES
    assert {t: after[t] for t in before} == before  # finished trials kept, not run again

    table = pd.read_csv(exp_dir / "results.csv")
    assert set(table["trial"]) == set(after)
    assert list(table.columns[:5]) == [
        "trial",
        "iterations",
        "best epoch",
        "accuracy",
        "recall macro",
    ]
    assert (table["best epoch"] <= table["iterations"]).all()
    assert table["recall macro"].is_monotonic_decreasing
    assert set(table["iterations"]) <= {1, 2}  # ASHA may stop a trial after one epoch
    assert (exp_dir / "results.md").read_text().count("\n| ") == 1 + SAMPLES  # header, trials

    summary = json.loads((exp_dir / "summary.json").read_text())
    best = summary["best_trial"]
    assert summary["test"]["n"] == len(load_dataset(real_data_dir).test)  # whole test part
    assert json.loads((exp_dir / "best_run" / "metrics.json").read_text()).keys() == {
        "valid",
        "test",
    }

    # best_config.toml reruns the best trial exactly (trials train on one thread)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, out, _ = run_cli(
            capsys,
            "train",
            "--config",
            str(exp_dir / "best_config.toml"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--name",
            "rerun",
            "--tracking-uri",
            "none",
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0, out
    rerun, trial = tmp_path / "runs" / "rerun", exp_dir / best / "checkpoint_000000"
    weights = [load_file(str(run / "model.safetensors")) for run in (rerun, trial)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    metrics = ["epoch", "train_loss", "val_loss", "val_macro_recall", "lr"]  # not the timings
    pd.testing.assert_frame_equal(
        pd.read_csv(rerun / "history.csv")[metrics], pd.read_csv(trial / "history.csv")[metrics]
    )

    # every trial logged to MLflow, the test metrics on the best one
    client = MlflowClient(f"sqlite:///{experiments / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("beatlab-tune/tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    finished = sorted(r.data.tags["trial_name"] for r in runs if r.info.status == "FINISHED")
    assert finished == sorted(table["trial"])
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}  # none left "running"
    best_runs = [r for r in runs if r.data.tags.get("best_trial") == "true"]
    assert [r.data.tags["trial_name"] for r in best_runs] == [best]
    assert best_runs[0].data.metrics["test_macro_recall"] == summary["test"]["macro_recall"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("space", "args", "problem"),
    [
        ("widht = {choice = [8, 16]}\n", [], "unknown hyperparameter 'widht'"),
        ("dropout = {uniform = [0.3, 0.1]}\n", [], "'dropout': empty range"),
        (TINY_SPACE, ["--address", "127.0.0.1:{port}"], "cannot reach a Ray cluster at"),
        (TINY_SPACE, ["--search", "bayes"], "--search must be one of hyperopt, random, grid"),
        (
            "learning_rate = {uniform = [0.05, 0.2]}\n",
            ["--model", "gbt"],
            "model 'gbt' fits all its rounds before it reports one: use --scheduler fifo",
        ),
        ('lead = "V1"\nlr = {uniform = [0.001, 0.01]}\n', [], "set by `beatlab tune --lead`"),
        (TINY_SPACE, ["--folds", "5", "--fold", "5"], "'fold' must be below 'folds'"),
        (TINY_SPACE, ["--fold", "1"], "'fold' (1) needs 'folds'"),
        (TINY_SPACE, ["--metric", "val_loss"], "that search balance are not comparable on it"),
        (
            "augment_jitter = {choice = [0, 8]}\n",
            ["--model", "gbt", "--scheduler", "fifo"],
            "or augment_jitter = 0",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    space: str,
    args: list[str],
    problem: str,
) -> None:
    path = tmp_path / "space.toml"
    path.write_text(space)
    args = [a.format(port=free_port()) for a in args]
    began = time.monotonic()
    code, _, err = run_cli(
        capsys, "tune", *TINY, "--space", str(path), "--experiments-dir", str(tmp_path), *args
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and problem in err
    assert time.monotonic() - began < 10  # no data loaded, no Ray started


def test_resume_needs_an_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        code, _, err = run_cli(capsys, "tune", "--resume", str(path))
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert str(path) in err
    assert "not a beatlab tune experiment" in run_cli(capsys, "tune", "--resume", str(tmp_path))[2]


def test_search_on_prepared_files(
    real_formats: Path,
    tiny_space: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(real_formats)  # relative file names are kept as absolute ones
    code, out, _ = run_cli(
        capsys,
        "tune",
        *TINY,
        "--space",
        str(tiny_space),
        "--train-file",
        "ptbdb_normal_sample.csv,ptbdb_abnormal_sample.csv",
        "--search",
        "random",
        "--scheduler",
        "fifo",
        "--samples",
        "2",
        "--name",
        "ptb",
        "--experiments-dir",
        str(tmp_path),
        "--tracking-uri",
        "none",
    )
    assert code == 0, out
    best = load_config(tmp_path / "ptb" / "best_config.toml")
    assert best.train_file == ",".join(
        str(real_formats / f) for f in ("ptbdb_normal_sample.csv", "ptbdb_abnormal_sample.csv")
    )
    summary = json.loads((tmp_path / "ptb" / "summary.json").read_text())
    assert summary["test"]["n"] == 40  # the stratified 20 % carved from the two files


def test_search_over_trees_on_a_fold_and_lead_reports_each_trial_once(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tree model's search on the second lead, holding out fold 1 of a patient-grouped
    5-fold (one step of nested cross-validation), with the class weights' power searched."""
    space = tmp_path / "gbt.toml"
    space.write_text(
        "rounds = 12\nstride = 12\nlearning_rate = {choice = [0.1, 0.2]}\n"
        "class_weight_power = {choice = [0.5, 1.0]}\n"
    )
    where = ["--split", "inter", "--folds", "5", "--fold", "1", "--lead", "V1,V2,V4,V5"]
    code, out, _ = run_cli(
        capsys,
        "tune",
        "--model",
        "gbt",
        "--max-epochs",
        "3",  # fewer than the rounds: a tree trial is not cut by it
        "--limit",
        "300",
        *where,
        "--space",
        str(space),
        "--search",
        "random",
        "--scheduler",
        "fifo",
        "--samples",
        "2",
        "--name",
        "trees",
        "--experiments-dir",
        str(tmp_path),
        "--data-dir",
        str(real_data_dir),
        "--tracking-uri",
        "none",
    )
    assert code == 0, out
    exp_dir = tmp_path / "trees"
    trials = ExperimentAnalysis(str(exp_dir)).trials
    assert [t.last_result["training_iteration"] for t in trials] == [1, 1]  # one report each
    table = pd.read_csv(exp_dir / "results.csv")
    assert list(table["iterations"]) == [12, 12]  # every round scored
    assert (table["best epoch"] <= 12).all()
    assert table[["batch", "dropout", "factor"]].isna().all().all()
    assert set(table["class_weight_power"]) <= {0.5, 1.0}
    best = load_config(exp_dir / "best_config.toml")
    assert (best.hparams["rounds"], best.lead, best.folds, best.fold) == (12, "V1,V2,V4,V5", 5, 1)
    held_out = dataset_for(best.updated({"limit": None})).test  # the rerun's test part
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["test"]["n"] == len(held_out) and set(held_out.record) <= set(DS1)
    kept = json.loads((exp_dir / "best_run" / "run.json").read_text())["dataset"]
    assert (kept["lead"], kept["folds"], kept["fold"]) == ("V1,V2,V4,V5", 5, 1)

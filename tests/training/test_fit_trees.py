"""Training a tree model (`gbt`) through the CLI: rounds for epochs, the round kept on the
validation part, and every command a network's run takes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from beatlab.data.build import Beats
from beatlab.training.config import TrainConfig
from beatlab.training.runs import load_run
from beatlab.training.trees import with_copies

pytestmark = pytest.mark.usefixtures("one_thread")

TREES = ("--model", "gbt", "--layout", "deviation_median_rr", "--tracking-uri", "none")


def train(
    capsys: pytest.CaptureFixture[str], root: Path, runs: Path, name: str, *sets: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", name, *TREES),
        *("--set", "rounds=6", "--set", "min_samples_leaf=2"),
        *(arg for s in sets for arg in ("--set", s)),
    )


def test_trees_train_keep_a_round_and_run_every_command(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    code, out, err = train(capsys, root, runs, "a")
    assert code == 0, err
    a = runs / "a"
    history = pd.read_csv(a / "history.csv")
    info = json.loads((a / "run.json").read_text())
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]  # one row per boosting round
    best = int(history["val_macro_recall"].idxmax()) + 1  # the first round scoring best
    assert info["best_epoch"] == best and f"kept round {best} of 6" in out
    assert info["parameters"] == 0 and (a / "learning_curves.png").exists()

    code, _, err = train(capsys, root, runs, "again")  # same config and seed: same trees
    assert code == 0, err
    first, second = load_file(a / "model.safetensors"), load_file(runs / "again/model.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)

    code, _, err = train(capsys, root, runs, "b", "lead=V1", "validate=false")
    assert code == 0, err
    assert json.loads((runs / "b/run.json").read_text())["best_epoch"] == 6  # the last round
    code, _, err = run_cli(
        capsys, "ensemble", str(a), str(runs / "b"), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 0, err
    e = runs / "e"
    for run in (a, e):
        code, _, err = run_cli(capsys, "evaluate", str(run))
        assert code == 0, err
        assert "test" in json.loads((run / "metrics.json").read_text())
        code, _, err = run_cli(capsys, "report", str(run), "--out", str(tmp_path / run.name))
        assert code == 0, err
        page = tmp_path / f"{run.name}.html"
        args = ("--run", str(run), "--record", str(tiny_mitdb / "100"))
        code, _, err = run_cli(capsys, "view", *args, "--out", str(page))
        assert code == 0 and page.exists(), err
        table = tmp_path / f"{run.name}.csv"
        code, _, err = run_cli(capsys, "predict", *args, "--out", str(table))
        assert code == 0, err
        onnx_file = tmp_path / f"{run.name}.onnx"
        code, _, err = run_cli(capsys, "export", "--run", str(run), "--out", str(onnx_file))
        assert code == 0, err
        code, _, err = run_cli(
            capsys, "predict", *args, "--onnx", str(onnx_file), "--out", str(tmp_path / "o.csv")
        )
        assert code == 0, err
        columns = [c for c in pd.read_csv(table) if c.startswith("p_")]
        np.testing.assert_allclose(
            pd.read_csv(tmp_path / "o.csv")[columns], pd.read_csv(table)[columns], atol=1e-5
        )
        int8 = tmp_path / f"{run.name}.int8.onnx"
        code, _, err = run_cli(capsys, "export", "--run", str(run), "--int8", "--out", str(int8))
        assert code == 2 and "has none (export it without --int8" in err, err
        assert not int8.exists()
    beats, rr = torch.rand(4, 2, 187), 0.5 + torch.rand(4, 2, 3)  # each lead's own R-R
    with torch.no_grad():
        mean = sum(
            load_run(r).model(beats[:, i], rr[:, i]).softmax(1)
            for i, r in enumerate((a, runs / "b"))
        )
        torch.testing.assert_close(load_run(e).model(beats, rr).softmax(1), mean / 2)


@pytest.mark.parametrize(
    ("sets", "problem"),
    [
        (("augment_jitter=8", "augment_noise=0.02"), "set augment_copies = K to add K perturbed"),
        (("augment_copies=2",), "augment_copies needs an augment_* setting"),
        (("balance=oversample", "sampler=balanced"), "sampler 'balanced' draws beats per epoch"),
        (("dropout=0.3",), "dropout does not apply to trees"),
    ],
)
def test_what_trees_cannot_use_is_refused_before_training(
    tiny_mitdb: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sets: tuple[str, ...],
    problem: str,
) -> None:
    runs = tmp_path / "runs"
    code, _, err = train(capsys, tiny_mitdb.parent, runs, "x", *sets)
    assert code == 2 and problem in err and "Traceback" not in err, err
    assert not (runs / "x").exists()


def test_trees_fit_perturbed_copies_drawn_from_the_seed(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 50
    beats = Beats(
        np.random.default_rng(0).random((n, 187), dtype=np.float32),
        np.arange(n) % 3,
        np.ones((n, 3), np.float32),
        np.array(["100"] * n),
        np.arange(n),
        np.zeros((n, 187), np.float32),
    )
    config = TrainConfig().updated(
        {"augment_copies": 2, "augment_noise": 0.1, "augment_rr_jitter": 0.04, "seed": 3}
    )
    table = with_copies(beats, config)
    assert len(table) == 3 * n and table.median is None
    assert np.array_equal(table.x[:n], beats.x) and np.array_equal(table.y, np.tile(beats.y, 3))
    assert not np.array_equal(table.x[n : 2 * n], beats.x)
    assert not np.array_equal(table.x[n : 2 * n], table.x[2 * n :])  # each copy its own draw
    assert np.array_equal(with_copies(beats, config).x, table.x)
    assert np.array_equal(table.rr[:, 2], beats.rr[np.tile(np.arange(n), 3), 2])

    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    sets = ("augment_copies=2", "augment_jitter=4", "augment_jitter_at=peak")
    for name in ("a", "again"):
        code, _, err = train(capsys, root, runs, name, *sets, "augment_rr_jitter=0.04")
        assert code == 0, err
    first, second = (load_file(runs / name / "model.safetensors") for name in ("a", "again"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "n"),
        *("--epochs", "1", "--tracking-uri", "none", "--set", "augment_copies=1"),
    )
    assert code == 2 and "augment_copies is for tree models" in err, err
    assert not (runs / "n").exists()


def test_a_tree_run_is_not_fine_tuned(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    code, _, err = train(capsys, root, runs, "a")
    assert code == 0, err
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "t"),
        *("--init-from", str(runs / "a"), "--epochs", "1", "--tracking-uri", "none"),
    )
    assert code == 2 and "is a tree model: --init-from fine-tunes" in err, err
    assert not (runs / "t").exists()


def test_the_scikit_learn_wrapper_fits_trees() -> None:
    from beatlab.training.estimator import BeatClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 187), dtype=np.float32)
    y = (x[:, 5] > 0).astype(int) + (x[:, 50] > 1)
    clf = BeatClassifier("gbt", hparams={"use_rr": False, "rounds": 20}).fit(x, y)
    assert len(clf.history_) == 20 and clf.score(x, y) > 0.7
    assert clf.predict_proba(x[:3]).shape == (3, 3)

"""Interrupt and resume: the same weights as an uninterrupted run; one monitor decides the kept
epoch, early stopping and what a tuning trial reports; output to a file is never wrapped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli, write_record
from safetensors.torch import load_file

from beatlab.data import layouts
from beatlab.training import run as run_module
from beatlab.training.config import TrainConfig
from beatlab.training.run import Interrupted, resume_run, train_run
from beatlab.training.runs import MARKER, RESUME, load_train_state
from beatlab.training.tracking import Tracker
from beatlab.training.trainer import TrainState

TIMINGS = ["seconds", "val_seconds"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "mitdb").mkdir()
    rng = np.random.default_rng(0)
    for name in ("100", "101"):
        write_record(name, root / "mitdb", rng, seconds=30)
    return root


def config_for(data_dir: Path, **values: Any) -> TrainConfig:
    """Three short epochs that use every random generator: dropout, oversampling, augmentation."""
    return TrainConfig(data_dir=str(data_dir)).updated(
        {
            "epochs": 3,
            "limit": 60,
            "batch_size": 8,
            "early_stopping": 0,
            "balance": "oversample",
            "augment_noise": 0.01,
            "augment_jitter": 2,
            "hparams": {"dropout": 0.3, "filters": 8, "dense": 16},
            **values,
        }
    )


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv").drop(columns=TIMINGS)


def stopped_after_first_epoch(config: TrainConfig, runs: Path) -> tuple[Path, Interrupted]:
    """The run `runs/cut`, interrupted (as by Ctrl+C) once its first epoch is done."""

    def stop_after_first(epoch: int, row: dict[str, float]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train_run(
            config, runs, name="cut", tracking_uri="none", on_epoch=stop_after_first, progress=False
        )
    return runs / "cut", stopped.value


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resumed_run_ends_with_the_same_weights(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ema_decay: float
) -> None:
    """Also with a moving average of the weights, whose state the resumable state keeps."""
    last: dict[str, dict[str, torch.Tensor]] = {}  # each run's weights after its last epoch
    save = run_module.save_train_state

    def keep_last(path: Path, state: TrainState, extra: dict[str, Any]) -> None:
        last[path.parent.name] = {k: v.clone() for k, v in state.model.items()}
        save(path, state, extra)

    monkeypatch.setattr(run_module, "save_train_state", keep_last)
    config = config_for(data_dir, ema_decay=ema_decay)
    full = train_run(config, tmp_path, name="full", tracking_uri="none", progress=False)

    cut, stopped = stopped_after_first_epoch(config, tmp_path)
    assert (stopped.epochs, stopped.total) == (1, 3)
    assert {p.name for p in cut.iterdir()} == {MARKER, "config.json", "history.csv", RESUME}
    assert len(pd.read_csv(cut / "history.csv")) == 1

    resume_run(cut, tracking_uri="none", progress=False)
    assert not (cut / RESUME).exists()  # finished: nothing left to resume
    pd.testing.assert_frame_equal(history(cut), history(full))
    assert len(history(cut)) == 3
    for name in ("model.safetensors",):
        a, b = load_file(str(full / name)), load_file(str(cut / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert last["cut"].keys() == last["full"].keys()
    assert all(torch.equal(last["cut"][k], last["full"][k]) for k in last["full"])
    infos = [json.loads((run / "run.json").read_text()) for run in (full, cut)]
    assert infos[0]["best_epoch"] == infos[1]["best_epoch"]
    assert infos[1]["epochs_run"] == 3


def test_cli_interrupt_marks_mlflow_killed_and_resume_finishes_it(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = Tracker.log_metrics

    def interrupt_at_first_epoch(self: Tracker, metrics: dict[str, Any], step: Any = None) -> None:
        log(self, metrics, step)
        if step == 1:
            raise KeyboardInterrupt

    args = ["--data-dir", str(data_dir), "--runs-dir", str(tmp_path), "--tracking-uri", uri]
    train = ["train", *args, "--name", "cut", "--epochs", "2", "--limit", "60", "--batch-size", "8"]
    with monkeypatch.context() as patch:
        patch.setattr(Tracker, "log_metrics", interrupt_at_first_epoch)
        code, out, err = run_cli(capsys, *train)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == (
        "beatlab: interrupted after 1 of 2 epochs; the run is kept: continue with "
        f"`beatlab train --resume {tmp_path / 'cut'}`"
    )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("beatlab-train")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]

    monkeypatch.setenv("COLUMNS", "30")  # what a narrow log would wrap at
    resume = ["train", "--resume", str(tmp_path / "cut")]
    code, out, err = run_cli(capsys, *resume, "--tracking-uri", uri)
    assert code == 0, err
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]  # the same run, continued
    tags = runs[0].data.tags  # what its sums depended on, to compare runs by in MLflow
    assert tags["arithmetic.cpu"] == cpu_kernels() and tags["arithmetic.threads"] == "1"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")]
    assert sorted(steps) == [1, 2]
    # output to a pipe or file: each epoch's line whole (never wrapped at 80 columns)
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == [epoch_lines[0]] and epoch_lines[0].startswith("epoch 2/2: loss ")
    assert " val_recall " in epoch_lines[0] and " lr " in epoch_lines[0]

    code, _, err = run_cli(capsys, *resume)
    assert code == 2 and "nothing to resume" in err


def test_resume_refuses_a_layout_changed_since_the_run_started(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """A later beatlab that reads the layout otherwise would train the last epochs on other
    beats than the first: one line, and the run left as it was, resumable by the old one."""
    cut, _ = stopped_after_first_epoch(config_for(data_dir, epochs=2), tmp_path)
    files = {p.name: p.read_bytes() for p in cut.iterdir()}
    later = replace(layouts.KACHUEE, period_factor=1.3)  # what a later beatlab might register
    with monkeypatch.context() as patch:
        patch.setitem(layouts._LAYOUTS, "kachuee", later)
        code, _, err = run_cli(capsys, "train", "--resume", str(cut), "--tracking-uri", "none")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "reads the run's kachuee beats with other parameters" in err
    assert {p.name: p.read_bytes() for p in cut.iterdir()} == files
    resume_run(cut, tracking_uri="none", progress=False)  # the beatlab it started with
    assert (cut / "run.json").is_file() and not (cut / RESUME).exists()


def test_resume_elsewhere_says_the_later_epochs_are_another_draw(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """Another CPU's kernels (or another thread count) sum in another order: the run goes on,
    with one warning line naming what changed; the same machine resumes silently."""
    cut, _ = stopped_after_first_epoch(config_for(data_dir, epochs=3), tmp_path)
    started = load_train_state(cut / RESUME)[1]["arithmetic"]
    assert started == {"torch": torch.__version__, "cpu": cpu_kernels(), "threads": 1}
    other = "AVX2" if started["cpu"] != "AVX2" else "AVX512"
    with monkeypatch.context() as patch:
        patch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
        code, _, err = run_cli(capsys, "train", "--resume", str(cut), "--tracking-uri", "none")
    assert code == 0, err
    said = [line for line in err.splitlines() if "warning" in line]
    assert said == [
        f"beatlab: warning: {cut}: resumed with other arithmetic than it started with (cpu "
        f"{started['cpu']} -> {other}): it goes on, but its later epochs differ from an "
        "uninterrupted run's"
    ]
    info = json.loads((cut / "run.json").read_text())
    assert info["arithmetic"] == {**started, "cpu": other}

    again, _ = stopped_after_first_epoch(config_for(data_dir, epochs=2), tmp_path / "same")
    code, _, err = run_cli(capsys, "train", "--resume", str(again), "--tracking-uri", "none")
    assert code == 0 and "warning" not in err, err


def cpu_kernels() -> str:
    return str(torch.backends.cpu.get_cpu_capability())


@pytest.mark.parametrize(("monitor", "mode"), [("val_loss", "min"), ("val_accuracy", "max")])
def test_one_monitor_picks_the_kept_epoch(
    data_dir: Path, tmp_path: Path, monitor: str, mode: str
) -> None:
    config = config_for(data_dir, monitor=monitor, epochs=4, augment_noise=0.0)
    run = train_run(config, tmp_path, name="m", tracking_uri="none", progress=False)
    rows = pd.read_csv(run / "history.csv")
    values = rows[monitor].tolist()
    best = values.index(min(values) if mode == "min" else max(values)) + 1  # first of ties
    info = json.loads((run / "run.json").read_text())
    assert (info["best_epoch"], info["monitor"], info["mode"]) == (best, monitor, mode)
    saved = json.loads((run / "config.json").read_text())
    assert (saved["monitor"], saved["mode"]) == (monitor, mode)  # --config reruns it the same
    valid = json.loads((run / "metrics.json").read_text())["valid"]
    assert valid["accuracy"] == pytest.approx(rows.loc[best - 1, "val_accuracy"])


def test_early_stopping_follows_the_monitor(data_dir: Path, tmp_path: Path) -> None:
    config = config_for(data_dir, monitor="val_loss", epochs=8, early_stopping=1, lr=1e-30)
    run = train_run(config, tmp_path, name="stop", tracking_uri="none", progress=False)
    losses = pd.read_csv(run / "history.csv")["val_loss"].tolist()
    # stops at the first epoch whose loss is not below the best before it
    stop = next(i for i in range(1, len(losses)) if losses[i] >= min(losses[:i]))
    assert len(losses) == stop + 1


def test_trial_reports_the_epoch_it_keeps(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beatlab.training.data import dataset_for
    from beatlab.tuning import trial

    reports: list[dict[str, float]] = []
    kept: list[dict[str, Any]] = []

    def report(metrics: dict[str, float], checkpoint: Any = None) -> None:
        reports.append(dict(metrics))
        if checkpoint is not None:
            run = Path(checkpoint.path)
            kept.append(json.loads((run / "run.json").read_text()))
            kept.append({"history": pd.read_csv(run / "history.csv")})

    monkeypatch.setattr(trial.tune, "report", report)
    config = config_for(data_dir, monitor="val_loss", mode="min", epochs=4, augment_noise=0.0)
    shared = dataset_for(config.updated({"balance": "none", "limit": None}))
    trial.run_trial(config.to_dict(), shared=shared, threads=1)
    info, rows = kept[0], kept[1]["history"]
    final = reports[-1]
    assert final["epoch"] == info["best_epoch"]  # reported = kept (= tested) epoch
    assert final["val_loss"] == pytest.approx(rows["val_loss"].min())
    assert final["epochs_run"] == 4 == len(rows)
    assert [r["epochs_run"] for r in reports] == [1, 2, 3, 4]
    for r in reports:  # each report: the best epoch so far, as ASHA sees the trial
        assert r["val_loss"] == pytest.approx(rows["val_loss"][: int(r["epochs_run"])].min())


def test_tables_print_in_full_to_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    from beatlab.cli.common import print_table

    row = {f"hyperparameter_{i}": 0.123456789 for i in range(12)}
    print_table([row, row], title="a table far wider than 80 columns")
    out = capsys.readouterr().out
    assert "…" not in out and "0.1235" in out
    assert max(len(line) for line in out.splitlines()) > 200


def test_sigterm_acts_as_ctrl_c_even_after_a_library_took_it() -> None:
    import os
    import signal

    from beatlab import interrupts

    with interrupts.sigterm_as_interrupt() as received:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init does (its handler aborts)
        interrupts.reinstall()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)  # let the handler run
        assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back on the way out


def test_a_moving_average_is_what_is_validated_and_kept(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last: list[dict[str, torch.Tensor]] = []  # the last step's weights, and the average's
    save = run_module.save_train_state

    def keep(path: Path, state: TrainState, extra: dict[str, Any]) -> None:
        assert state.ema is not None
        last.extend({k: v.clone() for k, v in w.items()} for w in (state.model, state.ema))
        save(path, state, extra)

    monkeypatch.setattr(run_module, "save_train_state", keep)
    config = config_for(data_dir, epochs=1, ema_decay=0.9)
    run = train_run(config, tmp_path, name="ema", tracking_uri="none", progress=False)
    kept = load_file(str(run / "model.safetensors"))
    weights, ema = last
    average = {k.removeprefix("module."): v for k, v in ema.items() if k != "n_averaged"}
    assert kept.keys() == average.keys()
    assert all(torch.equal(kept[k], average[k]) for k in kept)
    assert not all(torch.equal(kept[k], weights[k]) for k in kept)  # not the last step's

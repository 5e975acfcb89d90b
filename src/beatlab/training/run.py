"""One training run end to end: dataset -> model -> fit -> run directory (+ MLflow), and its
evaluation on the test part, which only `evaluate_run` ever touches."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from beatlab.data.dataset import Dataset
from beatlab.data.formats import NO_RR
from beatlab.data.layouts import FILE_LAYOUTS
from beatlab.errors import BeatlabError
from beatlab.interrupts import deferred
from beatlab.models import BeatModel, create_model
from beatlab.output import warn
from beatlab.training.config import TrainConfig
from beatlab.training.data import classes_for, dataset_for, read_files, warn_outside
from beatlab.training.metrics import PER_RECORD_CLASSES, classification_metrics, per_record
from beatlab.training.plots import plot_confusion, plot_history
from beatlab.training.runs import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    METRICS,
    RESUME,
    RUN,
    arithmetic,
    check_run_dir,
    clean_up,
    gated_by_rhythm,
    is_ensemble,
    load_run,
    load_train_state,
    new_run_dir,
    package_versions,
    read_json_object,
    save_checkpoint,
    save_history,
    save_train_state,
    transfer_model,
    write_json,
)
from beatlab.training.tracking import Tracker
from beatlab.training.trainer import (
    EpochCallback,
    Tensors,
    TrainState,
    fit,
    predict_proba,
    seed_everything,
)


class Interrupted(KeyboardInterrupt):
    """Ctrl+C or SIGTERM during training, after `epochs` finished epochs: the run directory
    keeps them, and `beatlab train --resume run_dir` continues."""

    def __init__(self, run_dir: Path, epochs: int, total: int) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.epochs, self.total = run_dir, epochs, total


def build_model(config: TrainConfig, num_classes: int) -> BeatModel:
    """A fresh model, or (with init_from) the source run's model and weights with a new head for
    this task, optionally with its backbone frozen. Seeded: initial weights are part of what a
    seed reproduces."""
    if not config.init_from:
        seed_everything(config.seed)
        return create_model(config.model, num_classes=num_classes, **config.hparams)
    _, hparams, _ = transfer_model(config)  # before seeding: it builds models of its own
    seed_everything(config.seed)
    source = load_run(Path(config.init_from)).model
    model = source
    if hparams != source.hparams:  # e.g. another dropout: the same weights, other settings
        model = create_model(source.name, num_classes=source.num_classes, **hparams)
        model.load_state_dict(source.state_dict())
    model.reset_head(num_classes)
    for param in model.backbone_parameters():
        param.requires_grad = not config.freeze_backbone
    return model


def loss_weights(ds: Dataset, config: TrainConfig) -> list[float] | None:
    """The dataset's balanced class weights raised to `class_weight_power`: full weights make
    a class of 800 beats count like one of 90,000, which buys rare-class recall with many false
    alarms on normal beats; a power below 1 trades between the two."""
    weights = ds.meta.get("class_weights")
    if weights is None:
        return None
    return [float(w) ** config.class_weight_power for w in weights]


def train_run(
    config: TrainConfig,
    runs_dir: Path,
    *,
    name: str | None = None,
    tracking_uri: str | None = None,
    dataset: Dataset | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """Train per `config` and write a run directory; returns its path. `replace` lets it take
    the place of an earlier run of the same name (see `new_run_dir`).

    A failure before the first epoch finished removes the run's own files. After that the run
    directory keeps the finished epochs: an interrupt raises `Interrupted`, and
    `resume_run` continues either way."""
    config.check()  # every value, before minutes of data loading
    if name is not None:  # a bad or taken name, too
        check_run_dir(runs_dir, name, replace=replace)
    ds = dataset if dataset is not None else dataset_for(config)
    model = build_model(config, ds.num_classes)
    if model.use_rr and ds.meta.get("source") == "files":
        raise BeatlabError(NO_RR, config.init_from or config.train_file)
    # the architecture as built (the source run's with --init-from), every default spelled out
    config = config.updated(
        {"model": model.name, "hparams": model.hparams, "mode": config.direction}
    )
    run_dir = new_run_dir(runs_dir, name, config.model, replace=replace)
    _train_guarded(run_dir, config, ds, model, runs_dir, tracking_uri, on_epoch, progress, None)
    return run_dir


def resume_run(
    run_dir: Path,
    *,
    tracking_uri: str | None = None,
    dataset: Dataset | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> Path:
    """Continue an interrupted run from its last finished epoch. The data, weights, optimizer,
    scheduler and random generators are restored, so the result is the one an uninterrupted
    run would have given."""
    if not run_dir.is_dir():
        raise BeatlabError("no such run directory", run_dir)
    state_file = run_dir / RESUME
    if not state_file.is_file():
        if (run_dir / RUN).is_file() and (run_dir / CHECKPOINT).is_file():
            raise BeatlabError("the run has finished; there is nothing to resume", run_dir)
        raise BeatlabError(
            f"no saved training state ({RESUME}): the run was stopped before its first epoch "
            "finished, or is not a beatlab run",
            run_dir,
        )
    config = TrainConfig.from_dict(read_json_object(run_dir / CONFIG), run_dir / CONFIG)
    state, extra = load_train_state(state_file)
    ds = dataset if dataset is not None else dataset_for(config)
    sizes = [list(ds.classes), len(ds.train), len(ds.valid)]
    if [extra.get("classes"), extra.get("train_beats"), extra.get("valid_beats")] != sizes:
        raise BeatlabError(
            "the run's data changed since it started (classes or the number of training or "
            "validation beats differ); train a new run instead",
            run_dir,
        )
    started = extra.get("layout_params")  # absent in a state saved before beatlab kept it
    if started is not None and started != ds.meta.get("layout_params"):
        raise BeatlabError(
            f"this beatlab reads the run's {config.layout} beats with other parameters than "
            "the run started with (its first epochs saw other beats); train a new run instead",
            run_dir,
        )
    warn_other_arithmetic(extra.get("arithmetic"), arithmetic(config.threads), run_dir)
    try:
        model = create_model(config.model, num_classes=ds.num_classes, **config.hparams)
    except BeatlabError as err:
        raise BeatlabError(err.problem, run_dir / CONFIG) from None
    for param in model.backbone_parameters():  # as build_model left them
        param.requires_grad = not (config.init_from and config.freeze_backbone)
    spent = float(extra.get("train_seconds", 0.0))
    _train_guarded(
        run_dir, config, ds, model, run_dir.parent, tracking_uri, on_epoch, progress, state, spent
    )
    return run_dir


def warn_other_arithmetic(
    started: dict[str, Any] | None, now: dict[str, Any], run_dir: Path
) -> None:
    """A resumed run goes on wherever it is resumed, but it gives the uninterrupted run's result
    bit for bit only with the arithmetic it started with (`arithmetic`): say so where that
    differs, rather than refuse a run that is merely another draw from there on."""
    if started is None:  # a state saved before beatlab kept it
        return
    changed = [
        f"{key} {started.get(key)} -> {now[key]}" for key in now if started.get(key) != now[key]
    ]
    if changed:
        warn(
            f"resumed with other arithmetic than it started with ({', '.join(changed)}): it "
            "goes on, but its later epochs differ from an uninterrupted run's",
            run_dir,
        )


def _train_guarded(
    run_dir: Path,
    config: TrainConfig,
    ds: Dataset,
    model: BeatModel,
    runs_dir: Path,
    tracking_uri: str | None,
    on_epoch: EpochCallback | None,
    progress: bool,
    resume: TrainState | None,
    spent: float = 0.0,
) -> None:
    """`_train_into`, and what a failure leaves: nothing of a run without a finished epoch (and
    nothing else: only its own files go), else the run and its finished epochs."""
    done = [resume.epoch if resume is not None else 0]
    try:
        _train_into(
            run_dir,
            config,
            ds,
            model,
            runs_dir,
            tracking_uri,
            on_epoch,
            progress,
            resume,
            spent,
            done,
        )
    except BaseException as err:
        if done[0] == 0:
            clean_up(run_dir)
            raise
        hint = f"continue with `beatlab train --resume {run_dir}`"
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted(run_dir, done[0], config.epochs) from err
        if isinstance(err, BeatlabError):
            raise BeatlabError(
                f"{err.problem}; {done[0]} finished epoch(s) kept: {hint}", err.path
            ) from err
        err.add_note(f"beatlab: {done[0]} finished epoch(s) kept in {run_dir}: {hint}")
        raise


def _train_into(
    run_dir: Path,
    config: TrainConfig,
    ds: Dataset,
    model: BeatModel,
    runs_dir: Path,
    tracking_uri: str | None,
    on_epoch: EpochCallback | None,
    progress: bool,
    resume: TrainState | None,
    spent: float,
    done: list[int],
) -> None:
    if resume is None:
        write_json(run_dir / CONFIG, config.to_dict())
    tracker = Tracker(tracking_uri, runs_dir, experiment="beatlab-train")
    start = time.perf_counter()
    sums = arithmetic(config.threads)
    bookkeeping = {
        "classes": list(ds.classes),
        "train_beats": len(ds.train),
        "valid_beats": len(ds.valid),
        "layout_params": ds.meta.get("layout_params"),
        "arithmetic": sums,
    }
    params = config.to_dict()
    tags = {
        "run_dir": str(run_dir),
        **{f"arithmetic.{k}": str(v) for k, v in sums.items()},
    }
    with tracker.run(run_dir.name, params, tags=tags, resume=bool(resume)):

        def epoch_done(epoch: int, row: dict[str, float]) -> None:
            tracker.log_metrics(row, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, row)

        def state_done(state: TrainState) -> None:
            seconds = spent + time.perf_counter() - start
            with deferred():  # an interrupt sees the epoch either wholly kept or not at all
                save_train_state(
                    run_dir / RESUME, state, {**bookkeeping, "train_seconds": round(seconds, 2)}
                )
                save_history(run_dir / HISTORY, state.result.history)
                done[0] = state.epoch

        result = fit(
            model,
            ds.train,
            ds.valid,
            config,
            ds.classes,
            class_weights=loss_weights(ds, config),
            on_epoch=epoch_done,
            on_state=state_done,
            resume=resume,
            progress=progress,
        )
        took = spent + time.perf_counter() - start
        save_checkpoint(run_dir / "model.safetensors", model)
        save_history(run_dir / HISTORY, result.history)
        write_json(run_dir / METRICS, {"valid": result.best_metrics})
        write_json(
            run_dir / RUN,
            {
                "classes": list(ds.classes),
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "monitor": config.monitor,
                "mode": config.direction,
                "train_seconds": round(took, 2),
                "train_beats": len(ds.train),
                "valid_beats": len(ds.valid),
                "train_range": value_range(ds.train.x),
                "dataset": ds.meta,
                "versions": package_versions(),
                "arithmetic": sums,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
        plot_history(result.history, run_dir / "learning_curves.png")
        (run_dir / RESUME).unlink(missing_ok=True)  # finished: nothing left to resume
        if result.best_metrics:  # none without a validation part
            tracker.log_metrics(
                {
                    "best_val_macro_recall": result.best_metrics["macro_recall"],
                    "best_val_accuracy": result.best_metrics["accuracy"],
                }
            )
        tracker.log_artifacts(run_dir)


def value_range(x: np.ndarray) -> list[float]:
    """The smallest and largest sample of the training beats: what `predict` warns outside."""
    return [float(x.min()), float(x.max())] if x.size else [0.0, 1.0]


def evaluate_run(
    run_dir: Path,
    part: str = "test",
    *,
    dataset: Dataset | None = None,
    test_file: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a run's best model on a part of its own dataset (rebuilt from its config), or
    on prepared beat files (`test_file`, stored in metrics.json under "file:<names>");
    `progress` shows a bar while the beats are classified."""
    if part not in ("train", "valid", "test"):
        raise BeatlabError(f"unknown part '{part}' (choose from train, valid, test)")
    run = load_run(run_dir)
    if not os.access(run_dir, os.W_OK | os.X_OK):  # before the work, not after it
        raise BeatlabError(
            "cannot write the results into the run directory (no permission)", run_dir
        )
    if test_file:
        if run.config.layout not in FILE_LAYOUTS:
            raise BeatlabError(
                f"beat files hold beats in the {' or '.join(FILE_LAYOUTS)} layout, but run "
                f"{run_dir.name} was trained on the {run.config.layout} layout; evaluate it on "
                "records (`beatlab evaluate RUN --db DB`)",
                test_file,
            )
        beats = read_files(test_file)
        classes = classes_for(beats.y)
        part = "file:" + ",".join(Path(f).name for f in test_file.split(","))
        where: str | Path = test_file
        warn_outside(beats.x, run.info.get("train_range"), where)
    else:
        if is_ensemble(run.info) and part != "test":
            raise BeatlabError(
                f"an ensemble's members trained and stopped on different beats, so its {part} "
                "part is not held out from all of them; evaluate its test part",
                run_dir,
            )
        plain = {"balance": "none", "sampler": "full"}  # only the training part is balanced
        whole = {"limit": None, **({} if part == "train" else plain)}
        ds = dataset if dataset is not None else dataset_for(run.config.updated(whole), run.layout)
        beats, classes, where = ds.part(part), ds.classes, run_dir
    if classes != run.classes:
        raise BeatlabError(
            f"labels are those of a {len(classes)}-class task {classes}, but the run's model "
            f"classifies {len(run.classes)} classes {run.classes}",
            where,
        )
    if run.model.use_rr and not beats.rr.any():
        raise BeatlabError(NO_RR, where)
    proba = predict_proba(run.model, Tensors.from_beats(beats), progress=progress)
    every = run.config.split == "inter" and part != "train"  # every beat of its records
    proba, note = gated_by_rhythm(run, proba, beats, every)
    metrics = classification_metrics(beats.y, proba, classes)
    if every and not test_file and set(PER_RECORD_CLASSES) <= set(classes):
        # patients the model never saw: where it fails is a patient, not a beat
        metrics["per_record"] = per_record(beats.record, beats.y, proba.argmax(axis=1), classes)
    if note:
        metrics["note"] = note
    all_metrics = read_json_object(run_dir / METRICS) if (run_dir / METRICS).exists() else {}
    all_metrics[part] = metrics
    write_json(run_dir / METRICS, all_metrics)
    plot_confusion(
        metrics,
        run_dir / f"confusion_{part.replace(':', '_')}.png",
        title=f"{run_dir.name} ({part})",
    )
    Tracker(tracking_uri, run_dir.parent, experiment="beatlab-train").log_to_existing(
        run_dir.name, {f"{part}_{k}": metrics[k] for k in ("accuracy", "macro_recall", "macro_f1")}
    )
    return metrics

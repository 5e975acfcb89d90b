"""One training run end to end: dataset -> model -> fit -> run directory (+ MLflow), and its
evaluation on the test part, which only `evaluate_run` ever touches."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from beatlab.data.dataset import Dataset
from beatlab.data.formats import NO_RR
from beatlab.errors import BeatlabError
from beatlab.models import BeatModel, check_model, create_model
from beatlab.training.config import TrainConfig
from beatlab.training.data import classes_for, dataset_for, read_files
from beatlab.training.metrics import classification_metrics
from beatlab.training.plots import plot_confusion, plot_history
from beatlab.training.runs import (
    CONFIG,
    HISTORY,
    METRICS,
    RUN,
    check_run_dir,
    clean_up,
    load_run,
    new_run_dir,
    package_versions,
    read_json,
    save_checkpoint,
    save_history,
    write_json,
)
from beatlab.training.tracking import Tracker
from beatlab.training.trainer import EpochCallback, Tensors, fit, predict_proba, seed_everything


def build_model(config: TrainConfig, num_classes: int) -> BeatModel:
    """A fresh model, or (with init_from) the source run's model and weights with a new head for
    this task, optionally with its backbone frozen. Seeded: initial weights are part of what a
    seed reproduces."""
    seed_everything(config.seed)
    if not config.init_from:
        return create_model(config.model, num_classes=num_classes, **config.hparams)
    model = load_run(Path(config.init_from)).model
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
    the place of an earlier run of the same name (see `new_run_dir`)."""
    if not config.init_from:
        check_model(config.model, **config.hparams)
    if name is not None:  # a bad or taken name fails before minutes of data loading
        check_run_dir(runs_dir, name, replace=replace)
    ds = dataset if dataset is not None else dataset_for(config)
    model = build_model(config, ds.num_classes)
    if model.use_rr and ds.meta.get("source") == "files":
        raise BeatlabError(NO_RR, config.init_from or config.train_file)
    # the architecture as built (the source run's with --init-from), every default spelled out
    config = config.updated({"model": model.name, "hparams": model.hparams})
    run_dir = new_run_dir(runs_dir, name, config.model, replace=replace)
    try:
        _train_into(run_dir, config, ds, model, runs_dir, tracking_uri, on_epoch, progress)
    except BaseException:
        clean_up(run_dir)  # no half-written run survives a failure; nothing else is touched
        raise
    return run_dir


def _train_into(
    run_dir: Path,
    config: TrainConfig,
    ds: Dataset,
    model: BeatModel,
    runs_dir: Path,
    tracking_uri: str | None,
    on_epoch: EpochCallback | None,
    progress: bool,
) -> None:
    write_json(run_dir / CONFIG, config.to_dict())
    tracker = Tracker(tracking_uri, runs_dir, experiment="beatlab-train")
    start = time.perf_counter()
    with tracker.run(run_dir.name, config.to_dict(), tags={"run_dir": str(run_dir)}):

        def epoch_done(epoch: int, row: dict[str, float]) -> None:
            tracker.log_metrics(row, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, row)

        result = fit(
            model,
            ds.train,
            ds.valid,
            config,
            ds.classes,
            class_weights=loss_weights(ds, config),
            on_epoch=epoch_done,
            progress=progress,
        )
        took = time.perf_counter() - start
        save_checkpoint(run_dir / "model.safetensors", model)
        save_history(run_dir / HISTORY, result.history)
        write_json(run_dir / METRICS, {"valid": result.best_metrics})
        write_json(
            run_dir / RUN,
            {
                "classes": list(ds.classes),
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "train_seconds": round(took, 2),
                "train_beats": len(ds.train),
                "valid_beats": len(ds.valid),
                "dataset": ds.meta,
                "versions": package_versions(),
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
        plot_history(result.history, run_dir / "learning_curves.png")
        tracker.log_metrics(
            {
                "best_val_macro_recall": result.best_metrics["macro_recall"],
                "best_val_accuracy": result.best_metrics["accuracy"],
            }
        )
        tracker.log_artifacts(run_dir)


def evaluate_run(
    run_dir: Path,
    part: str = "test",
    *,
    dataset: Dataset | None = None,
    test_file: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Metrics of a run's best model on a part of its own dataset (rebuilt from its config), or
    on prepared beat files (`test_file`, stored in metrics.json under "file:<names>")."""
    if part not in ("train", "valid", "test"):
        raise BeatlabError(f"unknown part '{part}' (choose from train, valid, test)")
    run = load_run(run_dir)
    if test_file:
        beats = read_files(test_file)
        classes = classes_for(beats.y)
        part = "file:" + ",".join(Path(f).name for f in test_file.split(","))
        where: str | Path = test_file
    else:
        ds = dataset if dataset is not None else dataset_for(run.config.updated({"limit": None}))
        beats, classes, where = ds.part(part), ds.classes, run_dir
    if classes != run.classes:
        raise BeatlabError(
            f"labels are those of a {len(classes)}-class task {classes}, but the run's model "
            f"classifies {len(run.classes)} classes {run.classes}",
            where,
        )
    if run.model.use_rr and not beats.rr.any():
        raise BeatlabError(NO_RR, where)
    metrics = classification_metrics(
        beats.y, predict_proba(run.model, Tensors.from_beats(beats)), classes
    )
    all_metrics = read_json(run_dir / METRICS) if (run_dir / METRICS).exists() else {}
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

"""A tuning experiment end to end: connect to Ray, search on validation, test the best once.

EXPERIMENTS_DIR/NAME/ holds Ray Tune's own state and results (one folder per trial, whose
checkpoint is a complete beatlab run directory) and beatlab's outputs:

    beatlab_tune.json   the settings, so that `beatlab tune --resume` needs nothing else
    search_space.*      a copy of the search-space file
    results.csv/.md     one row per trial (validation metrics), best first
    best_run/           the best trial's run directory, evaluated on the test part
    best_config.toml    its configuration: `beatlab train --config` reruns it exactly
    summary.json        the best trial and its validation and test metrics
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.hyperopt import HyperOptSearch

from beatlab import interrupts
from beatlab.data.dataset import Dataset, resolve_data_dir
from beatlab.errors import BeatlabError
from beatlab.io import writing
from beatlab.models.trees import BoostedTrees
from beatlab.training.config import MONITORS, TrainConfig, check_options
from beatlab.training.data import dataset_for
from beatlab.training.run import evaluate_run
from beatlab.training.runs import CONFIG, read_json, read_json_object, remove_run, write_json
from beatlab.training.tracking import resolve_uri
from beatlab.tuning.results import (
    all_results,
    config_toml,
    results_table,
    trial_id,
    write_table,
)
from beatlab.tuning.space import SearchSpace
from beatlab.tuning.trial import run_trial

SETTINGS_FILE = "beatlab_tune.json"
SEARCHES = ("hyperopt", "random", "grid")
SCHEDULERS = ("asha", "fifo")
CONNECT_TIMEOUT_S = 5.0


@dataclass
class TuneSettings:
    """Everything an experiment depends on besides its search space; saved beside its results."""

    model: str
    space_file: str
    search: str = "hyperopt"
    samples: int = 8
    scheduler: str = "asha"
    max_epochs: int = 10
    concurrency: int = 2
    metric: str = "val_macro_recall"
    split: str = "intra"
    db: str = "mitdb"
    layout: str = "kachuee"
    lead: str | None = None
    folds: int | None = None  # patient-grouped K-fold: fold `fold` is the test part
    fold: int = 0
    seed: int = 0
    limit: int | None = None
    data_dir: str | None = None
    train_file: str | None = None  # prepared beat files instead of the MIT-BIH split
    valid_file: str | None = None
    test_file: str | None = None
    cpus_per_trial: int = 1
    tracking_uri: str | None = None
    searched: list[str] = field(default_factory=list)
    trials: int = 0  # how many the experiment runs in all: samples (times the grid's size)

    def check(self) -> None:
        for flag, value, allowed in (
            ("--search", self.search, SEARCHES),
            ("--scheduler", self.scheduler, SCHEDULERS),
            ("--metric", self.metric, tuple(MONITORS)),
        ):
            if value not in allowed:
                raise BeatlabError(f"{flag} must be one of {', '.join(allowed)}, got '{value}'")
        for flag, number in (
            ("--samples", self.samples),
            ("--max-epochs", self.max_epochs),
            ("--concurrency", self.concurrency),
            ("--cpus-per-trial", self.cpus_per_trial),
        ):
            if number < 1:
                raise BeatlabError(f"{flag} must be at least 1, got {number}")
        data = {"split": self.split, "lead": self.lead, "folds": self.folds, "fold": self.fold}
        check_options({"seed": self.seed, "limit": self.limit, **data})  # each by its flag
        together = TrainConfig(split=self.split, lead=self.lead, folds=self.folds, fold=self.fold)
        together.check()  # a fold below the folds, a single lead
        if self.model == BoostedTrees.name and self.scheduler == "asha":
            raise BeatlabError(
                f"--scheduler asha stops trials by their first epochs; model '{self.model}' fits "
                "all its rounds before it reports one: use --scheduler fifo"
            )

    @property
    def mode(self) -> str:
        return MONITORS[self.metric]

    def fixed(self) -> dict[str, Any]:
        """The settings every trial shares (TrainConfig fields)."""
        return {
            "model": self.model,
            "epochs": self.max_epochs,
            "split": self.split,
            "db": self.db,
            "layout": self.layout,
            "lead": self.lead,
            "folds": self.folds,
            "fold": self.fold,
            "seed": self.seed,
            "data_dir": self.data_dir,
            "train_file": self.train_file,
            "valid_file": self.valid_file,
            "test_file": self.test_file,
            "limit": self.limit,
            "monitor": self.metric,  # trials keep, and report, the epoch best on the metric
            "mode": self.mode,
        }


@dataclass
class Outcome:
    """What a call to `start` or `resume` achieved; `complete` is False after an interruption."""

    exp_dir: Path
    complete: bool
    finished: int
    errored: int
    total: int
    table: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None


def start(
    settings: TuneSettings, space: SearchSpace, exp_dir: Path, address: str | None = None
) -> Outcome:
    """Run a new experiment in `exp_dir` (absolute; it must not exist yet)."""
    settings.check()
    weighing = sorted(set(space.searched) & {"balance", "class_weight_power"})
    if settings.metric == "val_loss" and weighing:
        raise BeatlabError(
            f"--metric val_loss is weighted by each trial's class weights, so trials that search "
            f"{' and '.join(weighing)} are not comparable on it: fix it in the space or choose "
            "another --metric",
            space.path,
        )
    if exp_dir.exists():
        raise BeatlabError("experiment exists; continue it with --resume or pick a --name", exp_dir)
    grid = settings.search == "grid"
    ranges = space.param_space(grid)
    data_dir = resolve_data_dir(Path(settings.data_dir) if settings.data_dir else None)
    settings = dataclasses.replace(  # trials and best_config.toml must not depend on the cwd
        settings,
        data_dir=str(data_dir.resolve()),
        train_file=absolute(settings.train_file),
        valid_file=absolute(settings.valid_file),
        test_file=absolute(settings.test_file),
        tracking_uri=resolve_uri(settings.tracking_uri, exp_dir.parent),
        searched=space.searched,
        trials=settings.samples * (space.grid_size() if grid else 1),
    )
    param_space = {**settings.fixed(), **ranges}
    address = reachable_address(address)
    data = load_split(settings)
    with ray_connection(address):
        try:
            exp_dir.mkdir(parents=True)
        except OSError as err:
            raise BeatlabError(f"cannot create: {err.strerror or err}", exp_dir) from None
        write_json(exp_dir / SETTINGS_FILE, dataclasses.asdict(settings))
        with writing(exp_dir / f"search_space{space.path.suffix}") as tmp:
            shutil.copyfile(space.path, tmp)
        tuner = tune.Tuner(
            trainable(data, settings.cpus_per_trial),
            param_space=param_space,
            tune_config=tune_config(settings),
            run_config=run_config(settings, exp_dir),
        )
        return finish(exp_dir, settings, tuner.fit(), data)


def resume(exp_dir: Path, address: str | None = None) -> Outcome:
    """Continue an interrupted experiment: finished trials are kept, the others (unfinished or
    failed) run again from the start, since a trial only checkpoints once it is done."""
    settings = load_settings(exp_dir)
    address = reachable_address(address)
    data = load_split(settings)
    if settings.tracking_uri:
        close_interrupted_runs(settings.tracking_uri, mlflow_experiment(exp_dir))
    with ray_connection(address):
        tuner = tune.Tuner.restore(
            str(exp_dir),
            trainable(data, settings.cpus_per_trial),
            resume_unfinished=True,
            restart_errored=True,
        )
        return finish(exp_dir, settings, tuner.fit(), data)


def load_settings(exp_dir: Path) -> TuneSettings:
    """The saved settings of an experiment directory, or a clear error if it is not one."""
    path = exp_dir / SETTINGS_FILE
    if not exp_dir.is_dir():
        raise BeatlabError("no such experiment directory", exp_dir)
    if not path.is_file() or not tune.Tuner.can_restore(str(exp_dir)):
        raise BeatlabError(
            f"not a beatlab tune experiment (needs {SETTINGS_FILE} and Ray Tune's state)", exp_dir
        )
    values = read_json_object(path)
    known = {f.name for f in dataclasses.fields(TuneSettings)}
    if not {"model", "space_file"} <= set(values) <= known:
        raise BeatlabError("not the settings of a beatlab tune experiment", path)
    try:
        settings = TuneSettings(**values)
        settings.check()
    except (TypeError, BeatlabError) as err:
        raise BeatlabError(f"damaged settings: {err}", path) from None
    return settings


def absolute(files: str | None) -> str | None:
    """Comma-separated file names, each made absolute."""
    return ",".join(str(Path(f.strip()).resolve()) for f in files.split(",")) if files else None


def load_split(settings: TuneSettings) -> Dataset:
    """The unbalanced, uncut split, read once by the driver."""
    drop = ("epochs", "limit", "monitor", "mode")
    fixed = {k: v for k, v in settings.fixed().items() if k not in drop}
    return dataset_for(TrainConfig(**fixed))


def trainable(data: Dataset, cpus: int) -> Any:
    """The trial function with the train and validation parts placed once in the object store
    (the test part stays with the driver: trials tune on validation only)."""
    shared = Dataset(data.train, data.valid, data.test.take(np.arange(0)), data.classes, data.meta)
    return tune.with_resources(
        tune.with_parameters(run_trial, shared=shared, threads=cpus), {"cpu": cpus}
    )


def tune_config(settings: TuneSettings) -> tune.TuneConfig:
    """The search algorithm and scheduler; both seeded."""
    search: Any
    limit: int | None = settings.concurrency  # Tune wraps a Searcher in a ConcurrencyLimiter
    if settings.search == "hyperopt":
        # TPE after half the budget (at most hyperopt's usual 20) has been sampled at random
        search = HyperOptSearch(
            random_state_seed=settings.seed,
            n_initial_points=min(20, max(1, settings.samples // 2)),
        )
    else:  # a generator, which Tune would not limit: it limits itself
        search = BasicVariantGenerator(
            random_state=settings.seed, max_concurrent=settings.concurrency
        )
        limit = None
    scheduler = (
        ASHAScheduler(max_t=settings.max_epochs, grace_period=1, reduction_factor=2)
        if settings.scheduler == "asha"
        else FIFOScheduler()
    )
    return tune.TuneConfig(
        metric=settings.metric,
        mode=settings.mode,
        search_alg=search,
        scheduler=scheduler,
        num_samples=settings.samples,
        max_concurrent_trials=limit,
        reuse_actors=True,  # a trial's process (torch imported, data fetched) serves the next
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
    )


def trial_name(trial: Any) -> str:
    """Short trial names (the trial id): folder names, MLflow run names and table rows."""
    return str(trial.trial_id)


def run_config(settings: TuneSettings, exp_dir: Path) -> tune.RunConfig:
    """Where results go, and the MLflow callback that logs every trial from the driver (so
    trials on other nodes need no access to the tracking store)."""
    callbacks: list[tune.Callback] = []
    if settings.tracking_uri:
        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=settings.tracking_uri,
                experiment_name=mlflow_experiment(exp_dir),
                tags={"experiment_dir": str(exp_dir), "model": settings.model},
            )
        )
    return tune.RunConfig(
        name=exp_dir.name, storage_path=str(exp_dir.parent), callbacks=callbacks, verbose=1
    )


def mlflow_experiment(exp_dir: Path) -> str:
    return f"beatlab-tune/{exp_dir.name}"


def reachable_address(address: str | None) -> str | None:
    """--address, else RAY_ADDRESS, else None (a private local instance). A HOST:PORT that
    does not answer within CONNECT_TIMEOUT_S is an error now rather than a long hang in Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "auto":
        return address
    host, sep, port = address.split("://")[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BeatlabError(f"Ray address must be HOST:PORT, got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise BeatlabError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or err}); "
            "start one with `ray start --head` or fix --address / RAY_ADDRESS"
        ) from None
    return address


@contextlib.contextmanager
def ray_connection(address: str | None) -> Iterator[None]:
    """Join the cluster at `address`, or start a local instance of our own (never silently
    joining one that happens to run on this machine); disconnect or stop it afterwards."""
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise BeatlabError(
            f"cannot connect to the Ray cluster at {address}: {err} (a cluster with token "
            "authentication also needs RAY_AUTH_MODE=token and its token here)"
        ) from None
    interrupts.reinstall()  # Ray's own SIGTERM handler aborts: SIGTERM must save the search
    try:
        yield
    finally:
        ray.shutdown()


def finish(exp_dir: Path, settings: TuneSettings, grid: tune.ResultGrid, data: Dataset) -> Outcome:
    """After the search: the results table, then the best finished trial tested once."""
    statuses = saved_statuses(exp_dir)
    finished, errored = statuses.count("TERMINATED"), statuses.count("ERROR")
    outcome = Outcome(
        exp_dir,
        complete=finished + errored == settings.trials,
        finished=finished,
        errored=errored,
        total=settings.trials,
    )
    if not outcome.complete:
        return outcome
    table = results_table(grid, settings.metric, settings.mode, settings.searched)
    write_table(
        table,
        exp_dir,
        f"# {exp_dir.name}: {settings.model}, {settings.search} search, {settings.scheduler}, "
        f"validation metrics, sorted by {settings.metric}",
    )
    by_trial = {trial_id(r): r for r in all_results(grid)}
    best = next((by_trial[t] for t in table["trial"] if by_trial[t].checkpoint), None)
    if best is None:
        raise BeatlabError("no trial finished training; see the errors above", exp_dir)
    outcome.table = table
    outcome.summary = evaluate_best(exp_dir, settings, best, data)
    return outcome


def saved_statuses(exp_dir: Path) -> list[str]:
    """Each trial's status as Tune last saved it. After Ctrl+C, Tune saves its state and then
    stops the running trials, which marks them TERMINATED in memory (as if they had finished);
    the saved state still says RUNNING or PENDING, which is what `--resume` goes by."""
    return [trial.status for trial in tune.ExperimentAnalysis(str(exp_dir)).trials]


def evaluate_best(
    exp_dir: Path, settings: TuneSettings, best: tune.Result, data: Dataset
) -> dict[str, Any]:
    """Copy the best trial's run to best_run/, evaluate it on the test part (the only time
    the experiment touches it) and write best_config.toml and summary.json."""
    best_run = exp_dir / "best_run"
    if best_run.exists():  # from an earlier, interrupted evaluation of this experiment
        remove_run(best_run)
    assert best.checkpoint is not None
    best.checkpoint.to_directory(str(best_run))
    test = evaluate_run(best_run, "test", dataset=data, tracking_uri="none")
    trial, metrics = trial_id(best), best.metrics or {}
    validation = {k: metrics[k] for k in MONITORS if k in metrics}  # older trials lack some
    config = read_json(best_run / CONFIG)
    with writing(exp_dir / "best_config.toml") as tmp:
        tmp.write_text(
            config_toml(
                config,
                f"Best trial {trial} of tuning experiment {exp_dir.name} "
                f"({settings.metric} {validation[settings.metric]:.4f} on validation).\n"
                f"Rerun: beatlab train --config {exp_dir / 'best_config.toml'}",
            )
        )
    summary = {
        "best_trial": trial,
        "metric": settings.metric,
        "validation": validation,
        "test": {k: test[k] for k in ("n", "accuracy", "macro_recall", "macro_f1")},
        "epochs": metrics.get("epochs_run", metrics["epoch"]),
        "best_epoch": metrics["epoch"],  # the epoch of best_run's checkpoint and these metrics
        "mode": settings.mode,
    }
    write_json(exp_dir / "summary.json", summary)
    if settings.tracking_uri:
        log_test_metrics(settings.tracking_uri, mlflow_experiment(exp_dir), trial, test)
    return summary


def mlflow_runs(uri: str, experiment: str, query: str) -> tuple[Any, list[Any]]:
    """An MLflow client and the runs of `experiment` that match `query`, newest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return client, []
    order = ["attributes.start_time DESC"]
    return client, list(client.search_runs([found.experiment_id], query, order_by=order))


def log_test_metrics(uri: str, experiment: str, trial: str, test: dict[str, Any]) -> None:
    """Add the test metrics to the best trial's (latest) MLflow run and tag it."""
    client, runs = mlflow_runs(uri, experiment, f"tags.trial_name = '{trial}'")
    for run in runs[:1]:
        for key in ("accuracy", "macro_recall", "macro_f1"):
            client.log_metric(run.info.run_id, f"test_{key}", float(test[key]))
        client.set_tag(run.info.run_id, "best_trial", "true")


def close_interrupted_runs(uri: str, experiment: str) -> None:
    """Mark the MLflow runs of trials cut off by an interruption KILLED (they would otherwise
    show as running forever); the resumed trials log to new runs."""
    client, runs = mlflow_runs(uri, experiment, "attributes.status = 'RUNNING'")
    for run in runs:
        client.set_terminated(run.info.run_id, status="KILLED")

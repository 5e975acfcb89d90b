"""What a report is made from: run directories and hypertuning experiment directories.

A run directory is what `beatlab train` writes (see `beatlab.training.runs`). An experiment
directory is what `beatlab tune` writes; only `results.csv` is required, the rest is used when
present:

    EXP/results.csv       one row per trial. Columns are matched by name after dropping any
                          "prefix/" (Ray Tune's "config/") and mapping aliases to the study's
                          names: iterations (training_iteration), accuracy (val_accuracy),
                          recall macro (val_macro_recall, macro_recall, recall_macro),
                          batch (batch_size), training set (training_set, balance); hidden,
                          dropout, num_layers, num_blocks, factor, gru_hidden and any other
                          tuned hyperparameter under its own name
    EXP/search_space.toml the search space (or space.toml; .yaml / .yml / .json): one entry
                          per hyperparameter, at top level or inside any table (e.g. [hparams]):
                          a list (a choice), a scalar (fixed), or a table such as
                          {choice = [16, 32]}, {randint = [1, 5]}, {uniform = [0.1, 0.4]},
                          {loguniform = [1e-4, 1e-2]}, {type = "uniform", low = 0.1, high = 0.4}
    EXP/best_config.toml  the best trial's config, as `beatlab train --config` reads it
                          (or best_config.yaml / .yml / .json)
    EXP/best_run/         the best configuration trained and evaluated on test: a run directory
    EXP/summary.json      {"metric": "val_macro_recall", "mode": "max", "test": {...}}: the
                          metric the search optimised (mode defaults to min for a loss, else
                          max) and the best configuration's test metrics (at least accuracy,
                          macro_recall, macro_f1, n; with per_class and confusion_matrix as in
                          a run's metrics.json, also its per-class table and confusion matrix);
                          optional "dataset" and "versions" as in run.json, used when there is
                          no best_run/
Other files (Ray Tune's state, results.md, beatlab_tune.json) are not read. A trial id column
("trial" or "trial_id") is shown in the trials table.

Trials are ranked by the summary's metric (default: recall macro, else accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from beatlab.errors import BeatlabError
from beatlab.training.config import (
    MONITOR_COLUMNS,
    STUDY_HPARAMS,
    TrainConfig,
    load_config,
    read_mapping,
)
from beatlab.training.runs import CONFIG, RUN, Run, load_run

STUDY_COLUMNS = ("iterations", "accuracy", "recall macro", *STUDY_HPARAMS)
"""The columns of the study's results and best-configuration tables."""

ALIASES = {
    "training_iteration": "iterations",
    "epochs_run": "iterations",
    **MONITOR_COLUMNS,
    "macro_recall": "recall macro",
    "recall_macro": "recall macro",
    "macro_f1": "f1 macro",
    "batch_size": "batch",
    "training_set": "training set",
    "balance": "training set",
}

DISTRIBUTIONS = {
    "choice",
    "grid",
    "grid_search",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "randint",
    "qrandint",
    "lograndint",
    "qlograndint",
    "randn",
    "qrandn",
    "normal",
}
CHOICES = {"choice", "grid", "grid_search"}
KIND_KEYS = ("type", "kind", "distribution", "dist")
VALUE_KEYS = ("values", "choices", "categories", "options")
RANGE_KEYS = (("low", "high"), ("min", "max"), ("lower", "upper"))
SPEC_KEYS = {*DISTRIBUTIONS, *KIND_KEYS, *VALUE_KEYS, *(k for pair in RANGE_KEYS for k in pair)}


def study_name(column: str) -> str:
    """The study's name for a results column or search-space key."""
    name = column.rsplit("/", 1)[-1]
    return ALIASES.get(name, name)


def show(value: Any) -> str:
    """A hyperparameter value as a table cell: 0.2, 0.1101, 1e-05, 64, smote; '–' if missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool | int | str):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value)
    return str(value)


def plain(value: Any) -> Any:
    """A numpy scalar from a DataFrame as the Python value, so it prints like a config value."""
    return value.item() if hasattr(value, "item") else value


@dataclass
class Param:
    """One search-space entry, described for the search-space table."""

    name: str
    kind: str
    values: str

    @property
    def tuned(self) -> bool:
        return self.kind != "fixed"


def parse_space(data: dict[str, Any]) -> list[Param]:
    """Every hyperparameter of a search-space mapping; tables that are not specs are sections."""
    params: list[Param] = []
    for key, value in data.items():
        if isinstance(value, dict) and not value.keys() & SPEC_KEYS:
            params += parse_space(value)
        else:
            params.append(_param(study_name(key), value))
    return params


def _param(name: str, value: Any) -> Param:
    if isinstance(value, list):
        return Param(name, "choice", show(value))
    if not isinstance(value, dict):
        return Param(name, "fixed", show(value))
    spec = dict(value)
    kind = next((str(spec.pop(k)) for k in KIND_KEYS if k in spec), "")
    parts: list[str] = []
    for key in VALUE_KEYS:
        if key in spec:
            kind = kind or "choice"
            parts.append(show(spec.pop(key)))
    for low, high in RANGE_KEYS:
        if low in spec and high in spec:
            parts.append(f"{show(spec.pop(low))} – {show(spec.pop(high))}")
    for dist in sorted(DISTRIBUTIONS & spec.keys()):
        kind, args = dist, spec.pop(dist)
        ranged = isinstance(args, list) and len(args) == 2 and dist not in CHOICES
        parts.append(f"{show(args[0])} – {show(args[1])}" if ranged else show(args))
    parts += [f"{k}={show(v)}" for k, v in spec.items()]
    return Param(name, kind or "fixed", "; ".join(parts))


@dataclass
class Experiment:
    """A hypertuning experiment: its trials (best first) and whatever else the directory holds."""

    path: Path
    trials: pd.DataFrame
    metric: str
    """The trials column the search optimised."""
    space: list[Param]
    best_config: TrainConfig | None
    best_run: Run | None
    summary: dict[str, Any]

    @property
    def tuned(self) -> list[str]:
        """Hyperparameters to plot: the space's tuned ones with values in the results; without a
        space file, the study's hyperparameter columns that vary."""
        if any(p.tuned for p in self.space):
            names = [p.name for p in self.space if p.tuned]
        else:
            names = [c for c in STUDY_HPARAMS if c in self.trials]
            names = [c for c in names if self.trials[c].nunique() > 1]
        found = [n for n in names if n in self.trials and self.trials[n].notna().any()]
        return list(dict.fromkeys(found))

    @property
    def best_trial(self) -> dict[str, Any]:
        return {str(k): plain(v) for k, v in self.trials.iloc[0].items() if pd.notna(v)}

    @property
    def test_metrics(self) -> dict[str, Any] | None:
        """The best configuration's test metrics: its run's, else the summary's."""
        if self.best_run is not None and "test" in self.best_run.metrics:
            return dict(self.best_run.metrics["test"])
        test = self.summary.get("test")
        return test if isinstance(test, dict) else None


def load_source(path: Path) -> Run | Experiment:
    """A run or an experiment, told apart by the files the directory holds."""
    if not path.is_dir():
        raise BeatlabError("no such directory", path)
    if (path / "results.csv").is_file():
        return load_experiment(path)
    if (path / CONFIG).is_file() and (path / RUN).is_file():
        return load_run(path)
    raise BeatlabError(
        "neither a run (config.json, run.json) nor an experiment (results.csv) directory", path
    )


def load_experiment(path: Path) -> Experiment:
    trials = _read_trials(path / "results.csv")
    summary = read_mapping(path / "summary.json") if (path / "summary.json").exists() else {}
    metric = study_name(str(summary.get("metric", "")))
    if not metric:
        found = [c for c in ("recall macro", "accuracy") if c in trials]
        if not found:
            raise BeatlabError("results.csv has no metric column (recall macro, accuracy)", path)
        metric = found[0]
    if metric not in trials:
        raise BeatlabError(f"results.csv has no column for the metric '{metric}'", path)
    mode = str(summary.get("mode") or ("min" if "loss" in metric else "max"))
    trials = trials.sort_values(
        metric, ascending=mode == "min", na_position="last", kind="stable"
    ).reset_index(drop=True)
    space_file = _first(path, "search_space") or _first(path, "space")
    best_config_file = _first(path, "best_config")
    best_run = path / "best_run"
    return Experiment(
        path=path,
        trials=trials,
        metric=metric,
        space=parse_space(read_mapping(space_file)) if space_file else [],
        best_config=load_config(best_config_file) if best_config_file else None,
        best_run=load_run(best_run) if (best_run / RUN).is_file() else None,
        summary=summary,
    )


def _read_trials(path: Path) -> pd.DataFrame:
    try:
        trials = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BeatlabError(f"unreadable results table: {str(err).splitlines()[0]}", path) from None
    except OSError as err:
        raise BeatlabError(f"cannot read: {err.strerror or err}", path) from None
    if trials.empty:
        raise BeatlabError("results table has no trials", path)
    taken, renamed = set(trials.columns), {}
    for column in trials.columns:
        name = study_name(str(column))
        if name not in taken:  # a clash keeps the original name rather than losing a column
            renamed[column] = name
            taken.add(name)
    return trials.rename(columns=renamed)


def _first(path: Path, stem: str) -> Path | None:
    candidates = (path / f"{stem}.{ext}" for ext in ("toml", "yaml", "yml", "json"))
    return next((p for p in candidates if p.is_file()), None)

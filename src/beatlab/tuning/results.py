"""The experiment's outputs: the study's results table and the best configuration as TOML."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Result, ResultGrid

from beatlab.io import writing
from beatlab.models import model_defaults
from beatlab.models.trees import BoostedTrees
from beatlab.training.config import MONITOR_COLUMNS, STUDY_HPARAMS, TrainConfig
from beatlab.tuning.trial import plain

NETWORK_ONLY = ("batch_size", "dropout", "factor")
"""Study columns that only a network trained by gradient steps uses (its batches, dropout, the
learning-rate schedule): blank for a tree model's trials."""


def results_table(grid: ResultGrid, metric: str, mode: str, searched: list[str]) -> pd.DataFrame:
    """One row per trial with its last validation result, best first.

    Columns: trial, iterations (epochs trained), best epoch (the one whose checkpoint the trial
    keeps, and whose validation metrics these are), the validation metrics, the study's
    hyperparameters (blank where the model has none or, like a tree model's batch, does not use
    them), then any other searched setting."""
    extra = [name for name in searched if name not in STUDY_HPARAMS.values()]
    rows = []
    for result in all_results(grid):
        config = full_config(result.config or {})
        settings = {**config.hparams, **config.to_dict()}
        if config.model == BoostedTrees.name:  # fitted at once, no layers
            settings = {k: v for k, v in settings.items() if k not in NETWORK_ONLY}
        metrics = result.metrics or {}
        row: dict[str, Any] = {
            "trial": trial_id(result),
            "iterations": int(metrics.get("epochs_run", metrics.get("epoch", 0))),
            "best epoch": int(metrics.get("epoch", 0)),  # the reported, kept and tested epoch
            "accuracy": metrics.get("val_accuracy"),
            "recall macro": metrics.get("val_macro_recall"),
        }
        row[MONITOR_COLUMNS[metric]] = metrics.get(metric)  # accuracy, recall macro: already in
        row.update({col: settings.get(name) for col, name in STUDY_HPARAMS.items()})
        row.update({name: settings.get(name) for name in extra})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(
        MONITOR_COLUMNS[metric], ascending=mode == "min", na_position="last", kind="stable"
    ).reset_index(drop=True)


def all_results(grid: ResultGrid) -> list[Result]:
    """Every trial's result (ResultGrid is indexable but declares no iterator)."""
    return [grid[i] for i in range(len(grid))]


def trial_id(result: Result) -> str:
    """The trial's id (also its folder and MLflow run name), even for a trial that failed early."""
    return str((result.metrics or {}).get("trial_id") or Path(result.path).name)


def full_config(params: dict[str, Any]) -> TrainConfig:
    """A trial's TrainConfig with every model hyperparameter spelled out."""
    config = TrainConfig.from_dict(plain(params))
    return config.updated({"hparams": {**model_defaults(config.model), **config.hparams}})


def write_table(table: pd.DataFrame, out_dir: Path, title: str) -> None:
    """results.csv and results.md."""
    with writing(out_dir / "results.csv") as tmp:
        table.to_csv(tmp, index=False)
    with writing(out_dir / "results.md") as tmp:
        tmp.write_text(f"{title}\n\n{markdown(table)}\n")


def markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table: numbers right-aligned, floats to 4 places, blanks for n/a."""
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = [
        "| " + " | ".join(str(c) for c in table.columns) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def config_toml(config: dict[str, Any], header: str) -> str:
    """A TrainConfig dict as TOML in the layout of configs/study (`[hparams]` last).

    TOML has no null, so unset (None) settings are left out: they are the defaults anyway."""
    settings = {k: v for k, v in config.items() if k != "hparams"}
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [*_toml_entries(settings), "", "[hparams]", *_toml_entries(config["hparams"])]
    return "\n".join(lines) + "\n"


def _toml_entries(values: dict[str, Any]) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]


def _toml_value(value: Any) -> str:
    """Booleans, numbers, strings and lists of them; JSON spells these as TOML does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)

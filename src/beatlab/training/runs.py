"""Run directories: config, per-epoch metrics, final metrics, checkpoint and plots of one run.

runs/<name>/config.json        TrainConfig (full model hparams): `beatlab train --config` reruns it
runs/<name>/run.json           classes, dataset provenance, package versions, best epoch, timings
runs/<name>/history.csv        one row per epoch
runs/<name>/metrics.json       {"valid": ..., "test": ...} (test only after `beatlab evaluate`)
runs/<name>/model.safetensors  best weights (never a pickled model object)
runs/<name>/*.png              learning curves, confusion matrices
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors.torch import load_file, save_file

from beatlab.errors import BeatlabError
from beatlab.io import atomic_path
from beatlab.models import BeatModel, create_model
from beatlab.training.config import TrainConfig

CONFIG, RUN, HISTORY, METRICS, CHECKPOINT = (
    "config.json",
    "run.json",
    "history.csv",
    "metrics.json",
    "model.safetensors",
)


def package_versions() -> dict[str, str]:
    """Versions of what a number depends on, for the provenance of every run and report."""
    out = {"python": platform.python_version()}
    for name in (
        "beatlab",
        "torch",
        "numpy",
        "scipy",
        "scikit-learn",
        "imbalanced-learn",
        "wfdb",
        "pandas",
        "pyarrow",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def new_run_dir(runs_dir: Path, name: str | None, model: str) -> Path:
    """runs/<name>, or runs/<model>-<timestamp> when no name is given; never reuses a run."""
    name = name or f"{model}-{datetime.now():%Y%m%d-%H%M%S}"
    path = runs_dir / name
    if (path / CHECKPOINT).exists():
        raise BeatlabError("a run with this name already exists; choose another --name", path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BeatlabError(f"missing {path.name}; is this a beatlab run directory?", path) from None
    except json.JSONDecodeError as err:
        raise BeatlabError(f"not valid JSON: {err}", path) from None


def save_history(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def save_checkpoint(path: Path, model: BeatModel) -> None:
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp),
            metadata={"model": model.name, "num_classes": str(model.num_classes)},
        )


def load_model(run_dir: Path, config: TrainConfig, num_classes: int) -> BeatModel:
    """Rebuild the architecture from the config and load the checkpoint's weights into it."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        raise BeatlabError(f"run has no checkpoint ({CHECKPOINT})", run_dir)
    model = create_model(config.model, num_classes=num_classes, **config.hparams)
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise BeatlabError(f"unreadable checkpoint: {err}", path) from None
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    shapes = [
        k
        for k, v in state.items()
        if k in model.state_dict() and tuple(v.shape) != tuple(model.state_dict()[k].shape)
    ]
    if missing or unexpected or shapes:
        raise BeatlabError(
            f"checkpoint does not fit model '{config.model}' "
            f"({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shapes)} wrongly shaped tensors)",
            path,
        )
    model.load_state_dict(state)
    model.eval()
    return model


@dataclass
class Run:
    """A finished run, loaded: its config, classes, model with best weights, and metadata."""

    path: Path
    config: TrainConfig
    classes: tuple[str, ...]
    model: BeatModel
    info: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.path / METRICS
        return read_json(path) if path.exists() else {}


def load_run(run_dir: Path) -> Run:
    if not run_dir.is_dir():
        raise BeatlabError("no such run directory", run_dir)
    config = TrainConfig.from_dict(read_json(run_dir / CONFIG), run_dir / CONFIG)
    info = read_json(run_dir / RUN)
    classes = tuple(info["classes"])
    return Run(run_dir, config, classes, load_model(run_dir, config, len(classes)), info)

"""Run directories: config, per-epoch metrics, final metrics, checkpoint and plots of one run.

runs/<name>/config.json        TrainConfig (full model hparams): `beatlab train --config` reruns it
runs/<name>/run.json           classes, dataset provenance, package versions, best epoch, timings
runs/<name>/history.csv        one row per epoch
runs/<name>/metrics.json       {"valid": ..., "test": ...} (test only after `beatlab evaluate`)
runs/<name>/model.safetensors  best weights (never a pickled model object)
runs/<name>/*.png              learning curves, confusion matrices
runs/<name>/.beatlab-run       marks the folder as created by `beatlab train`

beatlab only ever deletes files it wrote itself: a failed run removes the files of its own run
directory, by name, and the directory only when that leaves it empty; `--replace` refuses a folder
that is not a marked run or that holds anything else.
"""

from __future__ import annotations

import contextlib
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
from beatlab.io import writing
from beatlab.models import BeatModel, create_model
from beatlab.training.config import TrainConfig

CONFIG, RUN, HISTORY, METRICS, CHECKPOINT = (
    "config.json",
    "run.json",
    "history.csv",
    "metrics.json",
    "model.safetensors",
)
MARKER = ".beatlab-run"
RUN_FILES = (CONFIG, RUN, HISTORY, METRICS, CHECKPOINT, MARKER)
"""What `beatlab train` writes into a run directory, besides its PNG plots."""


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


def check_name(name: str, what: str = "--name") -> str:
    """A run or experiment name is one plain folder name: never a path, `.` or `..`, so that a
    command can only ever create (and clean up) a folder of its own inside the runs directory."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise BeatlabError(f"{what} must be a plain folder name (no path), got {name!r}")
    return name


def check_run_dir(runs_dir: Path, name: str, *, replace: bool = False) -> Path:
    """runs/<name>, checked: a plain name, and free (or, with `replace`, an earlier beatlab run
    that holds nothing else)."""
    path = runs_dir / check_name(name)
    if path.exists() or path.is_symlink():
        if not replace:
            raise BeatlabError(
                "already exists; choose another --name (or --replace an earlier run)", path
            )
        check_replaceable(path)
    return path


def new_run_dir(runs_dir: Path, name: str | None, model: str, *, replace: bool = False) -> Path:
    """Create runs/<name> (default runs/<model>-<timestamp>) fresh and mark it as beatlab's,
    after removing the earlier run that `replace` allows `check_run_dir` to accept."""
    path = check_run_dir(
        runs_dir, name or f"{model}-{datetime.now():%Y%m%d-%H%M%S}", replace=replace
    )
    if path.exists():
        clean_up(path)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        path.mkdir()
        (path / MARKER).write_text(
            f"created by beatlab train at {datetime.now():%Y-%m-%dT%H:%M:%S}\n"
        )
    except OSError as err:
        raise BeatlabError(f"cannot create run directory: {err.strerror or err}", path) from err
    return path


def own_files(run_dir: Path) -> list[Path]:
    """The files of a run directory that beatlab wrote: its known files and PNG plots."""
    return [run_dir / n for n in RUN_FILES if (run_dir / n).is_file()] + sorted(
        p for p in run_dir.glob("*.png") if p.is_file()
    )


def clean_up(run_dir: Path) -> None:
    """Undo a failed `beatlab train`: remove the files it wrote (and leftover temp files of its
    atomic writes), then the folder only if nothing else is in it."""
    for path in own_files(run_dir) + list(run_dir.glob(".*.tmp")):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # fails, and so keeps the folder, when anything else is inside


def check_replaceable(run_dir: Path) -> None:
    """Refuse to replace a folder that is not a beatlab run, or that holds anything else."""
    if not run_dir.is_dir() or run_dir.is_symlink() or not (run_dir / MARKER).is_file():
        raise BeatlabError("not a beatlab run directory; will not replace it", run_dir)
    foreign = sorted(set(run_dir.iterdir()) - set(own_files(run_dir)))
    if foreign:
        raise BeatlabError(
            f"holds files beatlab did not write ({', '.join(p.name for p in foreign[:3])}); "
            "will not replace it",
            run_dir,
        )


def remove_run(run_dir: Path) -> None:
    """Delete an earlier run, only when it is beatlab's and holds nothing else."""
    check_replaceable(run_dir)
    clean_up(run_dir)


def write_json(path: Path, data: Any) -> None:
    with writing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BeatlabError(f"missing {path.name}; is this a beatlab run directory?", path) from None
    except json.JSONDecodeError as err:
        raise BeatlabError(f"not valid JSON: {err}", path) from None


def save_history(path: Path, history: list[dict[str, float]]) -> None:
    with writing(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def save_checkpoint(path: Path, model: BeatModel) -> None:
    with writing(path) as tmp:
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

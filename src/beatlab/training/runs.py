"""Run directories: config, per-epoch metrics, final metrics, checkpoint and plots of one run.

runs/<name>/config.json        TrainConfig (full model hparams): `beatlab train --config` reruns it
runs/<name>/run.json           classes, dataset provenance, package versions, arithmetic, best
                               epoch, timings
runs/<name>/history.csv        one row per epoch
runs/<name>/metrics.json       {"valid": ..., "test": ...} (test only after `beatlab evaluate`)
runs/<name>/model.safetensors  best weights (never a pickled model object)
runs/<name>/resume.safetensors while training: the state after the last finished epoch (weights,
                               optimizer, scheduler, random generators, history), rewritten
                               atomically each epoch; `beatlab train --resume` continues from it,
                               and a finished run no longer has it
runs/<name>/*.png              learning curves, confusion matrices
runs/<name>/.beatlab-run       marks the folder as created by `beatlab train`

beatlab only ever deletes files it wrote itself: a failed run removes the files of its own run
directory, by name, and the directory only when that leaves it empty; `--replace` refuses a folder
that is not a marked run or that holds anything else. An interrupted run keeps its finished
epochs (resume.safetensors), since that is work `--resume` continues.
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

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from beatlab.data.build import Beats
from beatlab.data.layouts import BuildParams, stored_layout
from beatlab.errors import BeatlabError, brief
from beatlab.io import writing
from beatlab.models import BeatModel, create_model
from beatlab.models.ensemble import MeanEnsemble
from beatlab.models.rhythm import AF_NOT_APPLIED, AF_NOTE, gate_records
from beatlab.models.trees import BoostedTrees
from beatlab.training.config import TrainConfig
from beatlab.training.trainer import FitResult, TrainState

CONFIG, RUN, HISTORY, METRICS, CHECKPOINT, RESUME = (
    "config.json",
    "run.json",
    "history.csv",
    "metrics.json",
    "model.safetensors",
    "resume.safetensors",
)
MARKER = ".beatlab-run"
RUN_FILES = (CONFIG, RUN, HISTORY, METRICS, CHECKPOINT, RESUME, MARKER)
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


def arithmetic(threads: int | None = None) -> dict[str, Any]:
    """What a seeded run's floating-point sums depend on besides its config and data: torch's
    version, the CPU kernels it dispatches to (AVX2, AVX512, ...) and its thread count (`threads`,
    or torch's default). Where all three match, a seed trains the same run bit for bit; where one
    differs, it trains another draw of the same config (the README's Two commands: how far)."""
    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "threads": threads or torch.get_num_threads(),
    }


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
        if (path.parent / RESUME).is_file():
            raise BeatlabError(
                f"the run was interrupted before it finished; continue it with "
                f"`beatlab train --resume {path.parent}`",
                path.parent,
            ) from None
        raise BeatlabError(f"missing {path.name}; is this a beatlab run directory?", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BeatlabError(f"not valid JSON: {err}", path) from None
    except OSError as err:
        raise BeatlabError(f"cannot read: {err.strerror or err}", path) from None


def read_json_object(path: Path) -> dict[str, Any]:
    """`read_json` of a file that must hold a JSON object (config.json, run.json, ...)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise BeatlabError(f"must hold a JSON object, got {type(data).__name__}", path)
    return data


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


def load_model(
    run_dir: Path,
    config: TrainConfig,
    num_classes: int,
    members: list[TrainConfig] | None = None,
    channels: list[int] | None = None,
    weights: list[float] | None = None,
) -> BeatModel:
    """Rebuild the architecture from the config (for an ensemble: each of `members` from its
    own config and in the mean by its `weights`, reading `channels` where they read different
    leads, deciding with the
    ensemble's config's decision weights) and load the checkpoint's weights into it."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        raise BeatlabError(f"run has no checkpoint ({CHECKPOINT})", run_dir)
    try:
        if not members:
            model = create_model(config.model, num_classes=num_classes, **config.hparams)
        else:
            built = [
                create_model(member.model, num_classes=num_classes, **member.hparams)
                for member in members
            ]
            decision = config.hparams.get("decision_weights", ())
            model = MeanEnsemble(built, tuple(decision), channels, weights)
    except BeatlabError as err:
        raise BeatlabError(err.problem, run_dir / (RUN if members else CONFIG)) from None
    except ValueError as err:
        raise BeatlabError(f"'channels' or 'member_weights': {err}", run_dir / RUN) from None
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise BeatlabError(f"unreadable checkpoint: {brief(err)}", path) from None
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
    def layout(self) -> BuildParams:
        """The beat layout the run was trained on, as it stored it (`run_layout`)."""
        return run_layout(self.config, self.info, self.path / RUN)

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.path / METRICS
        return read_json(path) if path.exists() else {}


def load_run(run_dir: Path) -> Run:
    config, info = read_run_files(run_dir)
    classes = tuple(info["classes"])
    members = [
        TrainConfig.from_dict(member["config"], run_dir / RUN) for member in info.get("members", [])
    ]
    model = load_model(
        run_dir, config, len(classes), members, info.get("channels"), info.get("member_weights")
    )
    return Run(run_dir, config, classes, model, info)


def run_layout(config: TrainConfig, info: dict[str, Any], source: Path) -> BuildParams:
    """The layout's parameters stored in run.json's dataset, or the registered layout of the
    config's name for a run from before runs stored them."""
    dataset = info.get("dataset")
    stored = dataset.get("layout_params") if isinstance(dataset, dict) else None
    return stored_layout(stored, config.layout, source)


def gated_by_rhythm(
    run: Run, proba: np.ndarray, beats: Beats, whole: bool = True
) -> tuple[np.ndarray, str]:
    """`proba` of a beat set with the run's `af_gate` applied record by record, and the line
    saying what it did. `whole`: the set holds every beat of its records, as a database and a
    patient-wise split's test part do; the intra split's parts hold some beats of each record,
    whose intervals are no rhythm, so there (and for a beat file's rows) it is not applied."""
    if not run.config.af_gate:
        return proba, ""
    if not whole or (beats.sample < 0).any():
        return proba, AF_NOT_APPLIED
    weights = run.model.config.decision_weights
    gated, flagged = gate_records(proba, beats.record, beats.sample, run.classes, weights)
    return gated, AF_NOTE.format(flagged) if flagged else ""


def is_ensemble(info: dict[str, Any]) -> bool:
    """Whether a run is an ensemble, by its run.json (a "members" list): the one test every
    command uses, and one that needs no model built (`--init-from` reads only the files)."""
    return "members" in info


def read_run_files(run_dir: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """A run's config and run.json, checked: what every reader of a run needs first."""
    if not run_dir.is_dir():
        raise BeatlabError("no such run directory", run_dir)
    config = TrainConfig.from_dict(read_json_object(run_dir / CONFIG), run_dir / CONFIG)
    info = read_json_object(run_dir / RUN)
    classes = info.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise BeatlabError("'classes' must be a non-empty list of class names", run_dir / RUN)
    members = info.get("members", [])
    if not isinstance(members, list) or len(members) == 1:
        raise BeatlabError("'members' must be a list of two or more runs", run_dir / RUN)
    if not all(isinstance(m, dict) and isinstance(m.get("config"), dict) for m in members):
        raise BeatlabError(
            "every one of 'members' needs the 'config' it trained with", run_dir / RUN
        )
    channels = info.get("channels", [])
    if not (isinstance(channels, list) and all(isinstance(c, int) for c in channels)):
        raise BeatlabError("'channels' must be a list of lead indices", run_dir / RUN)
    weights = info.get("member_weights", [])
    if not (isinstance(weights, list) and all(isinstance(w, int | float) for w in weights)):
        raise BeatlabError("'member_weights' must be a list of numbers", run_dir / RUN)
    run_layout(config, info, run_dir / RUN)
    return config, info


def transfer_model(config: TrainConfig) -> tuple[str, dict[str, Any], int]:
    """The model of an --init-from run (name, hyperparameters, classes) with the config's own
    hyperparameters merged in. Those may change what keeps the weights' shapes (dropout, say);
    a name the model does not have, or a value that changes the architecture, is refused here,
    before any data is read, instead of training and saving it."""
    assert config.init_from is not None
    source = Path(config.init_from)
    src_config, info = read_run_files(source)
    if is_ensemble(info):
        raise BeatlabError("is an ensemble; --init-from takes one of its members", source)
    if src_config.model == BoostedTrees.name:
        raise BeatlabError("is a tree model: --init-from fine-tunes a network's weights", source)
    src = {**src_config.hparams}
    given = config.hparams
    where = f"--init-from {source}"
    try:
        before = create_model(src_config.model, num_classes=len(info["classes"]), **src)
        after = create_model(src_config.model, num_classes=len(info["classes"]), **{**src, **given})
    except BeatlabError as err:
        raise BeatlabError(f"{err.problem} (the model of {where})") from None
    shapes = {k: tuple(v.shape) for k, v in before.state_dict().items()}
    if shapes != {k: tuple(v.shape) for k, v in after.state_dict().items()}:
        changed = sorted(k for k in given if given[k] != before.hparams.get(k))
        raise BeatlabError(
            f"{', '.join(map(repr, changed))} would change the architecture of the model of "
            f"{where}, whose weights fix it; leave it out or train without --init-from"
        )
    return src_config.model, after.hparams, len(info["classes"])


# --- resumable training state (one safetensors file: tensors, and the rest as JSON metadata) ---


def save_train_state(path: Path, state: TrainState, extra: dict[str, Any]) -> None:
    """Write the loop's state after an epoch, atomically, so that an interruption at any moment
    leaves either the previous epoch's state or this one's. `extra` is kept beside it (the
    run's own bookkeeping: classes, time spent)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, weights in (
        ("model", state.model),
        ("best", state.result.best_state),
        ("ema", state.ema or {}),
    ):
        tensors.update({f"{prefix}/{k}": v.detach().clone() for k, v in weights.items()})
    opt_values: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{name}"] = value.detach().clone()
            else:
                opt_values.setdefault(str(index), {})[name] = value
    name, keys, pos, has_gauss, cached = state.rng["numpy"]
    tensors["rng/torch"] = state.rng["torch"].clone()
    tensors["rng/generator"] = state.rng["generator"].clone()
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    result = state.result
    meta = {
        "epoch": state.epoch,
        "optimizer_groups": state.optimizer["param_groups"],
        "optimizer_values": opt_values,
        "scheduler": state.scheduler,
        "numpy_rng": [name, int(pos), int(has_gauss), float(cached)],
        "python_rng": state.rng["python"],
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "best_metrics": result.best_metrics,
        "stale": result.stale,
        **extra,
    }
    with writing(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"beatlab_state": json.dumps(meta, default=float)},
        )


def load_train_state(path: Path) -> tuple[TrainState, dict[str, Any]]:
    """What `save_train_state` wrote: the state, and its `extra` bookkeeping."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["beatlab_state"])
        groups = [
            {k: tuple(v) if k == "betas" else v for k, v in group.items()}
            for group in meta.pop("optimizer_groups")
        ]
        opt_state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                opt_state.setdefault(int(index), {})[name] = value
        for index, values in meta.pop("optimizer_values").items():
            opt_state.setdefault(int(index), {}).update(values)
        name, pos, has_gauss, cached = meta.pop("numpy_rng")
        version, internal, gauss = meta.pop("python_rng")
        rng = {
            "torch": tensors["rng/torch"],
            "generator": tensors["rng/generator"],
            "numpy": (name, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, cached),
            "python": (version, tuple(internal), gauss),
        }
        result = FitResult(
            history=meta.pop("history"),
            best_epoch=meta.pop("best_epoch"),
            best_state=_prefixed(tensors, "best/"),
            best_metrics=meta.pop("best_metrics"),
            best_score=float(meta.pop("best_score")),
            stale=meta.pop("stale"),
        )
        state = TrainState(
            epoch=meta.pop("epoch"),
            model=_prefixed(tensors, "model/"),
            optimizer={"state": opt_state, "param_groups": groups},
            scheduler=meta.pop("scheduler"),
            rng=rng,
            result=result,
            ema=_prefixed(tensors, "ema/") or None,
        )
    except BeatlabError:
        raise
    except OSError as err:
        raise BeatlabError(f"cannot read: {err.strerror or err}", path) from None
    except Exception as err:  # damaged or foreign file: safetensors, JSON or a missing key
        raise BeatlabError(f"not a readable training state: {brief(err)}", path) from None
    return state, meta


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

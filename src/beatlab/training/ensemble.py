"""`beatlab ensemble`: one run from several finished runs, their class probabilities averaged.

A model trained on a few patients depends a lot on its seed and on which held-out patients stop it
early; the mean of a few such runs varies less from one new patient to the next. The ensemble is a
run directory like any other, so `evaluate`, `predict`, `export`, `view` and `report` take it:

runs/<name>/config.json        the first member's config: the data and test part all members share
runs/<name>/run.json           classes, and each member's name, config and best epoch (what
                               reproduces the ensemble: retrain the members from their configs)
runs/<name>/model.safetensors  every member's weights, as members.<i>.<tensor>
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from beatlab.data.build import CHANNEL_SEPARATOR
from beatlab.errors import BeatlabError
from beatlab.models.ensemble import MeanEnsemble
from beatlab.training.config import TrainConfig
from beatlab.training.runs import (
    CONFIG,
    RUN,
    Run,
    clean_up,
    is_ensemble,
    load_run,
    new_run_dir,
    package_versions,
    save_checkpoint,
    write_json,
)

SHARED = ("db", "layout", "split", "train_file", "test_file")
"""What every member must share: the data its beats come from, cut the same way. Members may be of
different models (a CNN and a tree model, say: each is rebuilt from its own config in run.json)
and read different leads: the ensemble then reads one channel per lead (`member_channels`)."""
TEST_PART = ("seed", "folds", "fold", "valid_file")
"""What else fixes the test part, unless the split is `inter` (whose test part, DS2, no seed or
fold touches): members that differ here were tested on beats another member trained on."""


def ensemble_config(configs: list[TrainConfig], paths: list[Path]) -> TrainConfig:
    """The members' shared config (the first member's), checked; with `inter`, members may come
    from different seeds or folds of DS1, and the ensemble is tested on the split's own test
    part."""
    first = configs[0].to_dict()
    patient_wise = configs[0].split == "inter" and not configs[0].train_file
    keys = SHARED if patient_wise else SHARED + TEST_PART
    for config, path in zip(configs[1:], paths[1:], strict=True):
        other = config.to_dict()
        differ = [k for k in keys if other[k] != first[k]]
        if differ:
            raise BeatlabError(
                f"differs from {paths[0].name} in {', '.join(differ)}: members of an ensemble "
                "need the same beats and one test part",
                path / CONFIG,
            )
    return configs[0].updated({"folds": None, "fold": 0}) if patient_wise else configs[0]


def member_channels(configs: list[TrainConfig]) -> tuple[str | None, list[int] | None]:
    """The ensemble's lead and which channel each member reads: with members on different
    leads, their leads in order of first use joined by '|' (an empty part: the database's
    preferred leads), and each member's index among them; else the one lead and None."""
    leads = list(dict.fromkeys(config.lead or "" for config in configs))
    if len(leads) == 1:
        return configs[0].lead, None
    return CHANNEL_SEPARATOR.join(leads), [leads.index(c.lead or "") for c in configs]


def build_ensemble(
    members: list[Path],
    runs_dir: Path,
    name: str,
    *,
    decision_weights: list[float] | None = None,
    member_weights: list[float] | None = None,
    af_gate: bool | None = None,
    replace: bool = False,
) -> Path:
    """Write runs_dir/<name>, the ensemble of the finished runs `members` (two or more).

    `decision_weights` (default: the members') weigh the mean of the members' plain probabilities
    when the ensemble decides; `member_weights` (default: equal) weigh each member in that mean,
    as scikit-learn's VotingClassifier `weights` do; `af_gate` (default: the first member's)
    calls no beat S in atrial fibrillation (`TrainConfig.af_gate`)."""
    if len(members) < 2:
        raise BeatlabError(f"an ensemble needs two or more runs, got {len(members)}")
    if len({p.resolve() for p in members}) < len(members):
        raise BeatlabError("the same run is given twice")
    runs = [load_run(path) for path in members]
    for run in runs:
        if is_ensemble(run.info):
            raise BeatlabError("is an ensemble already; give its members", run.path)
        if run.classes != runs[0].classes:
            raise BeatlabError(
                f"classes {list(run.classes)} differ from {members[0].name}'s "
                f"{list(runs[0].classes)}",
                run.path,
            )
    config = ensemble_config([run.config for run in runs], members)
    for run in runs[1:]:
        if run.layout != runs[0].layout:
            raise BeatlabError(
                f"reads its {run.config.layout} beats with other parameters than "
                f"{members[0].name} (layout_params in run.json: trained with another beatlab); "
                "members of an ensemble need the same beats",
                run.path / RUN,
            )
    if decision_weights is not None:
        config = config.updated({"hparams": {"decision_weights": decision_weights}})
        config.check("--decision-weights")
    weights = tuple(config.hparams.get("decision_weights", ()))
    if weights and len(weights) != len(runs[0].classes):
        raise BeatlabError(
            f"{len(weights)} weights for {len(runs[0].classes)} classes "
            f"({', '.join(runs[0].classes)}): give one per class, or '' to decide by plain argmax",
            "--decision-weights",
        )
    if member_weights is not None and (
        len(member_weights) != len(runs) or not all(0 < w < math.inf for w in member_weights)
    ):
        raise BeatlabError(
            f"{len(member_weights)} weights for {len(runs)} runs: give one above 0 per run, "
            "in the order of the runs",
            "--member-weights",
        )
    lead, channels = member_channels([run.config for run in runs])
    config = config.updated({"lead": lead, **({} if af_gate is None else {"af_gate": af_gate})})
    model = MeanEnsemble([run.model for run in runs], weights, channels, member_weights)
    ranges = [run.info.get("train_range", [0.0, 1.0]) for run in runs]
    info: dict[str, Any] = {
        "classes": list(runs[0].classes),
        "members": [
            {
                "run": str(run.path),
                "config": run.config.to_dict(),
                "best_epoch": run.info.get("best_epoch"),
                "valid": run.metrics.get("valid"),
            }
            for run in runs
        ],
        "train_seconds": round(sum(run.info.get("train_seconds", 0.0) for run in runs), 2),
        "train_beats": [run.info.get("train_beats", 0) for run in runs],
        "valid_beats": [run.info.get("valid_beats", 0) for run in runs],
        "train_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)],
        "dataset": runs[0].info.get("dataset", {}),
        "versions": package_versions(),
        **members_arithmetic(runs),
        "parameters": sum(p.numel() for p in model.parameters()),
        **({"channels": channels} if channels else {}),
        **({"member_weights": model.weights} if model.weights else {}),
    }
    run_dir = new_run_dir(runs_dir, name, "ensemble", replace=replace)
    try:
        write_json(run_dir / CONFIG, config.to_dict())
        save_checkpoint(run_dir / "model.safetensors", model)
        write_json(run_dir / RUN, info)
    except BaseException:
        clean_up(run_dir)
        raise
    return run_dir


def members_arithmetic(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """The arithmetic its members trained with (`runs.arithmetic`): each setting's value, or
    its values joined where members differ ("AVX2, AVX512"), so that a report of the ensemble
    says on what its members were drawn; nothing where a member is from before runs kept it."""
    sums = [run.info.get("arithmetic") or {} for run in runs]
    if not all(sums):
        return {}
    values = {k: list(dict.fromkeys(each.get(k) for each in sums)) for k in sums[0]}
    return {
        "arithmetic": {
            k: v[0] if len(v) == 1 else ", ".join(map(str, v)) for k, v in values.items()
        }
    }

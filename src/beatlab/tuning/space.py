"""Search spaces: one TOML (or YAML/JSON) file per study table, checked before Ray starts.

Each top-level key is a training setting (`batch`, `factor`, `training_set`, ... or their
TrainConfig names) or a hyperparameter of the model, and its value is either fixed or a range:

    gru_hidden = {choice = [32, 64, 128, 256, 512]}
    num_blocks = {randint = [1, 5]}          # both ends included
    factor = {uniform = [0.1, 0.4]}
    lr = {loguniform = [1e-4, 1e-2]}
    weight_decay = 0.0                       # the same in every trial

A mistake here would otherwise surface as every trial failing on a worker, so each candidate
value (or both ends of a range) is checked by the same code that will use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from beatlab.errors import BeatlabError
from beatlab.models import create_model, model_defaults
from beatlab.training.config import ALIASES, AUGMENT_FIELDS, TrainConfig, read_mapping

RANGES = ("choice", "uniform", "loguniform", "randint")
TUNABLE_FIELDS = (
    "balance",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "factor",
    "lr_patience",
    "early_stopping",
    "grad_clip",
    "class_weight_power",
    *AUGMENT_FIELDS,
)
"""The TrainConfig fields a search may vary; the rest are fixed by the experiment or by data."""
SET_BY_TUNE = {
    "model": "--model",
    "epochs": "--max-epochs",
    "split": "--split",
    "db": "--db",
    "layout": "--layout",
    "lead": "--lead",
    "folds": "--folds",
    "fold": "--fold",
    "seed": "--seed",
    "data_dir": "--data-dir",
    "limit": "--limit",
    "monitor": "--metric",
    "mode": "--metric",
}


@dataclass(frozen=True)
class Param:
    """One entry: a fixed value (`kind` "fixed"), a list of choices or inclusive bounds."""

    name: str  # TrainConfig field or model hyperparameter (study aliases resolved)
    kind: str  # "fixed" or one of RANGES
    values: tuple[Any, ...]

    @property
    def finite(self) -> list[Any] | None:
        """Every value the entry can take, if there are finitely many."""
        if self.kind in ("fixed", "choice"):
            return list(self.values)
        if self.kind == "randint":
            return list(range(self.values[0], self.values[1] + 1))
        return None

    def domain(self, grid: bool) -> Any:
        """The Ray Tune form: a constant, a sampler, or (for grid search) every value."""
        if self.kind == "fixed":
            return self.values[0]
        if grid:
            assert self.finite is not None, "SearchSpace.param_space admits finite entries only"
            return tune.grid_search(self.finite)
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.kind == "uniform":
            return tune.uniform(low, high)
        if self.kind == "loguniform":
            return tune.loguniform(low, high)
        return tune.randint(low, high + 1)  # Ray's upper bound is exclusive


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space for one model."""

    path: Path
    model: str
    params: dict[str, Param]

    def param_space(self, grid: bool = False) -> dict[str, Any]:
        """Ray Tune's `param_space`; grid search needs every range to be finite."""
        if grid:
            for p in self.params.values():
                if p.finite is None:
                    raise BeatlabError(
                        f"grid search needs finite values, but '{p.name}' is a {p.kind} range;"
                        " use choice or randint, or --search hyperopt|random",
                        self.path,
                    )
        return {name: p.domain(grid) for name, p in self.params.items()}

    def grid_size(self) -> int:
        """Trials in one pass over the grid."""
        return math.prod(len(p.finite or ()) for p in self.params.values() if p.kind != "fixed")

    @property
    def searched(self) -> list[str]:
        return [name for name, p in self.params.items() if p.kind != "fixed"]


def load_space(path: Path, model: str) -> SearchSpace:
    """Read and check a search-space file (TOML, YAML or JSON) for `model`."""
    raw = read_mapping(path, "search space")
    defaults = model_defaults(model)  # also rejects an unknown model
    params: dict[str, Param] = {}
    for key, spec in raw.items():
        name = ALIASES.get(key, key)
        if name in SET_BY_TUNE:
            raise BeatlabError(
                f"'{key}' is set by `beatlab tune {SET_BY_TUNE[name]}`, not by the search space",
                path,
            )
        if name not in TUNABLE_FIELDS and name not in defaults:
            known = ", ".join(sorted({*TUNABLE_FIELDS, *ALIASES, *defaults}))
            raise BeatlabError(
                f"unknown hyperparameter '{key}' for model '{model}' (known: {known})", path
            )
        if name in params:
            raise BeatlabError(f"'{key}' is given twice (as '{name}' and an alias)", path)
        default = getattr(TrainConfig(), name) if name in TUNABLE_FIELDS else defaults[name]
        params[name] = _parse_entry(key, name, spec, default, path)
        for value in params[name].values:
            _check_value(model, name, value, path)
    if not any(p.kind != "fixed" for p in params.values()):
        raise BeatlabError("nothing to search: no entry has a range", path)
    return SearchSpace(path, model, params)


def _parse_entry(key: str, name: str, spec: Any, default: Any, path: Path) -> Param:
    if not isinstance(spec, dict):
        return Param(name, "fixed", (spec,))
    if len(spec) != 1 or next(iter(spec)) not in RANGES:
        raise BeatlabError(
            f"'{key}' must be a value or one of {', '.join(f'{{{r} = [...]}}' for r in RANGES)}",
            path,
        )
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise BeatlabError(f"'{key}': empty range ({kind} needs a non-empty list)", path)
    if kind == "choice":
        return Param(name, kind, tuple(values))
    if len(values) != 2 or not all(_is_number(v) for v in values):
        raise BeatlabError(f"'{key}': {kind} takes [low, high], got {values}", path)
    low, high = values
    if kind == "randint":
        if not (isinstance(default, int) and not isinstance(default, bool)):
            raise BeatlabError(
                f"'{key}' is not a whole-number setting; use uniform or choice", path
            )
        if not (isinstance(low, int) and isinstance(high, int)):
            raise BeatlabError(f"'{key}': randint bounds must be whole numbers", path)
        if low > high:
            raise BeatlabError(f"'{key}': empty range, randint [{low}, {high}]", path)
    else:
        if not isinstance(default, float):
            raise BeatlabError(f"'{key}' takes whole numbers or names; use randint or choice", path)
        if low >= high:
            raise BeatlabError(f"'{key}': empty range, {kind} [{low}, {high}]", path)
        if kind == "loguniform" and low <= 0:
            raise BeatlabError(f"'{key}': loguniform needs low > 0, got {low}", path)
    return Param(name, kind, (low, high))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(model: str, name: str, value: Any, path: Path) -> None:
    """Fail now, naming the file, on a value a trial would fail on."""
    if name not in TUNABLE_FIELDS:
        try:
            create_model(model, **{name: value})
        except BeatlabError as err:
            raise BeatlabError(err.problem, path) from None
        return
    # `updated` refuses an unknown balancing or optimizer; `check` judges the value with the
    # model (a tree model takes no augmentation)
    TrainConfig(model=model).updated({name: value}, path).check(path)

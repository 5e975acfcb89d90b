"""The training configuration: one flat, JSON-able record that rebuilds a run exactly."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from beatlab.errors import BeatlabError

DEFAULT_RUNS_DIR = Path("runs")
"""Where `beatlab train` and `beatlab tune` put run directories and the MLflow store."""

ALIASES = {"batch": "batch_size", "training_set": "balance", "trainfile": "balance"}
"""The study's column names for training settings."""
STUDY_HPARAMS = {
    "batch": "batch_size",
    "hidden": "hidden",
    "dropout": "dropout",
    "num_layers": "num_layers",
    "num_blocks": "num_blocks",
    "factor": "factor",
    "gru_hidden": "gru_hidden",
    "training set": "balance",
}
"""The study's hyperparameter columns (its tables' order) -> TrainConfig field or hparam."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; model hyperparameters live in `hparams`."""

    model: str = "cnn1d_resnet"
    hparams: dict[str, Any] = field(default_factory=dict)
    # data
    split: str = "intra"
    balance: str = "none"
    class_weight_power: float = 1.0
    """With balance="weights": the loss uses balanced weights ** power (0.5 damps them)."""
    seed: int = 0
    folds: int | None = None
    fold: int = 0
    data_dir: str | None = None
    train_file: str | None = None
    valid_file: str | None = None
    test_file: str | None = None
    limit: int | None = None
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    factor: float = 0.5
    lr_patience: int = 2
    early_stopping: int = 5
    grad_clip: float = 1.0
    # transfer
    init_from: str | None = None
    freeze_backbone: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        """Build from a mapping; unknown top-level keys become model hyperparameters."""
        config = cls()
        return config.updated(values, source)

    def updated(self, values: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        """A copy with `values` applied: fields by name (or study alias), the rest hparams."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        current = self.to_dict()
        hparams = dict(current.pop("hparams"))
        hparams.update(values.get("hparams") or {})
        for key, value in values.items():
            if key == "hparams":
                continue
            name = ALIASES.get(key, key)
            if name in fields:
                current[name] = _coerce(value, fields[name].type, name, source)
            else:
                hparams[key] = value
        return TrainConfig(**current, hparams=hparams)


def _coerce(value: Any, kind: Any, key: str, source: str | Path | None) -> Any:
    """Check a config value against its field's annotation (given as a string here)."""
    kind = str(kind)
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise BeatlabError(f"'{key}' cannot be empty", source)
    base = kind.split("|")[0].strip()
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
    }.get(base, True)
    if not ok:
        raise BeatlabError(f"'{key}' must be {base}, got {value!r}", source)
    return float(value) if base == "float" else value


def parse_value(text: str) -> Any:
    """A --set value: JSON/TOML-like literals (3, 0.2, true, [16, 12], "x"), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lowered = text.lower()
        return {"true": True, "false": False, "none": None}.get(lowered, text)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs from the command line."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BeatlabError(f"--set expects key=value, got '{item}'")
        out[key.strip()] = parse_value(value.strip())
    return out


def read_mapping(path: Path, what: str = "file") -> dict[str, Any]:
    """A TOML, YAML or JSON file holding a mapping (configs, search spaces, summaries)."""
    if not path.is_file():
        raise BeatlabError(f"{what} not found", path)
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            values = yaml.safe_load(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise BeatlabError(f"{what} must be .toml, .yaml, .yml or .json", path)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as err:
        first = str(err).splitlines()[0]
        raise BeatlabError(f"{what} does not parse: {first}", path) from None
    if not isinstance(values, dict):
        raise BeatlabError(f"{what} must hold a mapping of settings", path)
    return values


def load_config(path: Path) -> TrainConfig:
    """A TOML, YAML or JSON config file."""
    return TrainConfig.from_dict(read_mapping(path, "config"), path)

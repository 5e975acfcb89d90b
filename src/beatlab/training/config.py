"""The training configuration: one flat, JSON-able record that rebuilds a run exactly."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from collections.abc import Callable
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

MONITORS = {
    "val_macro_recall": "max",
    "val_accuracy": "max",
    "val_macro_f1": "max",
    "val_measured_recall": "max",
    "val_loss": "min",
}
"""Validation metrics a run can select its checkpoint on, with their natural direction."""
MONITOR_COLUMNS = {
    "val_macro_recall": "recall macro",
    "val_accuracy": "accuracy",
    "val_macro_f1": "f1 macro",
    "val_measured_recall": "measured recall",
    "val_loss": "loss",
}
"""Each monitor's column in the study's tables (tuning results, reports)."""
AUGMENT_FIELDS = (
    "augment_scale",
    "augment_wander",
    "augment_noise",
    "augment_jitter",
    "augment_stretch",
    "augment_rr_jitter",
    "augment_motion",
)
"""The settings of augmentation on the fly (training/augment.py); all 0: off."""
OPTIMIZERS = ("adam", "adamw")
SAMPLERS = ("full", "balanced")
JITTER_AT = ("beat", "peak")


def _finite(value: Any) -> bool:
    return math.isfinite(value)


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 2, "at least 2 (BatchNorm needs two beats in a batch)"),
    "limit": (lambda v: v >= 2, "at least 2 (BatchNorm needs two beats in a batch)"),
    "lr": (lambda v: _finite(v) and v > 0, "a number above 0"),
    "seed": (lambda v: 0 <= v < 2**32, "a whole number from 0 to 2**32 - 1"),
    "folds": (lambda v: v >= 2, "at least 2"),
    "fold": (lambda v: v >= 0, "at least 0"),
    "valid_fold": (lambda v: 0 <= v < 5, "a patient fold from 0 to 4 (a fifth each)"),
    "class_weight_power": (lambda v: _finite(v) and v >= 0, "a number of at least 0"),
    "weight_decay": (lambda v: _finite(v) and v >= 0, "a number of at least 0"),
    "factor": (lambda v: 0 < v < 1, "a number between 0 and 1 (both excluded)"),
    "lr_patience": (lambda v: v >= 0, "at least 0"),
    "early_stopping": (lambda v: v >= 0, "at least 0 (0: never stop early)"),
    "grad_clip": (lambda v: _finite(v) and v >= 0, "a number of at least 0 (0: no clipping)"),
    "ema_decay": (lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1 (0: off)"),
    "epoch_beats": (lambda v: v >= 2, "at least 2 (BatchNorm needs two beats in a batch)"),
    "threads": (lambda v: v >= 1, "at least 1"),
    "augment_scale": (lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1"),
    "augment_wander": (lambda v: _finite(v) and v >= 0, "a number of at least 0 (0: off)"),
    "augment_noise": (lambda v: _finite(v) and v >= 0, "a number of at least 0 (0: off)"),
    "augment_jitter": (lambda v: 0 <= v < 100, "a whole number of samples from 0 to 99"),
    "augment_stretch": (lambda v: 0 <= v < 0.5, "a number from 0 up to (not including) 0.5"),
    "augment_copies": (lambda v: 0 <= v <= 20, "a whole number of copies from 0 to 20"),
    "augment_rr_jitter": (lambda v: 0 <= v < 0.25, "a number from 0 up to (not including) 0.25"),
    "augment_motion": (lambda v: _finite(v) and v >= 0, "a number of at least 0 (0: off)"),
}
"""Range of each numeric setting; checked wherever a value enters a config, so a bad one fails
with one line before any data is read."""


def _choices(name: str) -> tuple[str, ...] | None:
    """The allowed values of a setting that names one of a few things (imported on use: the
    data modules load scikit-learn, which `beatlab --help` must not wait for)."""
    if name == "split":
        from beatlab.data.splits import SPLITS

        return tuple(SPLITS)
    if name == "balance":
        from beatlab.data.balance import BALANCING

        return tuple(BALANCING)
    return {
        "optimizer": OPTIMIZERS,
        "monitor": tuple(MONITORS),
        "mode": ("min", "max"),
        "sampler": SAMPLERS,
        "augment_jitter_at": JITTER_AT,
    }.get(name)


@dataclass
class TrainConfig:
    """Everything a training run depends on; model hyperparameters live in `hparams`."""

    model: str = "cnn1d_resnet"
    hparams: dict[str, Any] = field(default_factory=dict)
    # data
    db: str = "mitdb"
    """Database(s) to train on; comma-separated pools them (`mitdb,svdb`)."""
    layout: str = "kachuee"
    """Beat layout (`beatlab.data.layouts`): kachuee (the study's), kaggle (as the Kaggle files
    were built), or centred, deviation, deviation_median_rr (new patients)."""
    lead: str | None = None
    """The lead to cut beats from, or the first of a comma-separated list that each record has
    (`V1,V2,V5`); None: the database's preferred leads."""
    split: str = "intra"
    balance: str = "none"
    class_weight_power: float = 1.0
    """With balance="weights": the loss uses balanced weights ** power (0.5 damps them)."""
    seed: int = 0
    folds: int | None = None
    fold: int = 0
    valid_fold: int | None = None
    """Which patients validate a patient-wise run: fold k of a patient-grouped 5-fold of its
    training patients (None: of the seed's folds, the best balanced). Its folds, and those of
    `folds`, are shuffled alike whatever the seed, so members of an ensemble with valid_fold
    0, 1, 2 hold out different patients and the ensemble learns from them all."""
    validate: bool = True
    """False: no validation part. The patients (or beats) that would validate train too, for
    exactly `epochs` epochs, and the last epoch is kept: pick `epochs` by patient-wise
    cross-validation first. The learning rate then follows the training loss; `monitor` and
    `early_stopping` have nothing to act on."""
    data_dir: str | None = None
    train_file: str | None = None
    valid_file: str | None = None
    test_file: str | None = None
    limit: int | None = None
    sampler: str = "full"
    """full: every beat of the (balanced) training part once per epoch; balanced: each epoch draws
    `epoch_beats` beats from the distribution balance oversample or smote gives, without building
    that set (`beatlab.training.sampler`)."""
    epoch_beats: int | None = None
    """Beats per epoch with sampler="balanced" (None: as many as the balanced set would hold)."""
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    factor: float = 0.5
    lr_patience: int = 2
    early_stopping: int = 5
    """Stop after this many epochs without a better `monitor` (0: never)."""
    monitor: str = "val_macro_recall"
    """The validation metric that picks the kept checkpoint, stops early and ranks a tuning trial:
    one setting, so that the reported, the kept and the tested epoch are always the same."""
    mode: str | None = None
    """max or min: which way `monitor` improves (None: min for val_loss, else max)."""
    af_gate: bool = False
    """Call no beat S where its recording's R-R intervals say atrial fibrillation: the beat's S
    probability goes to N (`beatlab.models.rhythm`). Applied where a recording's beats are
    classified together (`predict`, `evaluate`); training and its validation never apply it."""
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    """Validate, select and keep an exponential moving average of the weights, updated every
    step with this decay (0: off, the last step's weights, as in the study)."""
    threads: int | None = None
    """torch CPU threads while training (None: torch's default, one per core)."""
    # augmentation on the fly (training/augment.py); all 0 = off, as in the study
    augment_scale: float = 0.0
    augment_wander: float = 0.0
    augment_noise: float = 0.0
    augment_jitter: int = 0
    augment_jitter_at: str = "beat"
    """What `augment_jitter` moves: the stored beat ("beat"), or its R peak ("peak"). They
    differ in a layout that subtracts the record's median beat (`deviation`): a detector's
    misplaced peak moves the beat off that median, which "peak" shows and "beat" does not."""
    augment_stretch: float = 0.0
    """The beat's time axis stretched about its R peak by U(1 - stretch, 1 + stretch): wider
    or narrower waves, as patients' QRS and QT durations differ."""
    augment_rr_jitter: float = 0.0
    """How far each R peak may move, as a share of the local R-R (U(-a, a) per peak, drawn
    apart from `augment_jitter`): the previous and next R-R over the local change as a
    detector's misplaced peaks change them. For layouts whose R-R is relative (centred)."""
    augment_motion: float = 0.0
    """Noise in the band of electrode motion (1-10 Hz, over the P and T waves and into the QRS,
    which the layouts' filters keep), its RMS U(0, motion) per beat in beat units (a deviation
    layout's median QRS spans 1)."""
    augment_copies: int = 0
    """Tree models only: fit on the beats plus this many copies perturbed by the augment_*
    settings (drawn once from `seed`); trees fit one fixed table, where networks draw new
    perturbations every batch."""
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
        given = values.get("hparams") or {}
        if not isinstance(given, dict):
            raise BeatlabError(f"'hparams' must be a table of settings, got {given!r}", source)
        hparams.update(given)
        for key, value in values.items():
            if key == "hparams":
                continue
            name = ALIASES.get(key, key)
            if name in fields:
                current[name] = _coerce(value, fields[name].type, name, source)
            else:
                hparams[key] = value
        return TrainConfig(**current, hparams=hparams)

    @property
    def built_balance(self) -> str:
        """The balancing the dataset itself gets: none where the sampler draws it per epoch."""
        return "none" if self.sampler == "balanced" else self.balance

    @property
    def direction(self) -> str:
        """ "max" or "min": which way `monitor` improves."""
        return self.mode or MONITORS.get(self.monitor, "max")

    def check(self, source: str | Path | None = None) -> None:
        """Every setting, every combination and the model's hyperparameters, before any data is
        read: the one place the CLI, config files, --init-from and tuning trials are checked.
        `source` (a file or option) is named in the error."""
        for f in dataclasses.fields(self):
            if f.name != "hparams":
                _coerce(getattr(self, f.name), f.type, f.name, source)
        from beatlab.data.build import CHANNEL_SEPARATOR

        if CHANNEL_SEPARATOR in (self.lead or ""):
            raise BeatlabError(
                f"'lead' {self.lead!r}: '{CHANNEL_SEPARATOR}' joins the leads of an ensemble's "
                "members; a run trains on one lead (or the first of a comma-separated list each "
                "record has)",
                source,
            )
        if self.folds is None and self.fold != 0:
            raise BeatlabError(f"'fold' ({self.fold}) needs 'folds' (--folds K)", source)
        if self.folds is not None and self.fold >= self.folds:
            raise BeatlabError(
                f"'fold' must be below 'folds', got fold={self.fold}, folds={self.folds}", source
            )
        if self.valid_fold is not None and (self.split != "inter" and self.folds is None):
            raise BeatlabError(
                "'valid_fold' needs patient-wise validation (--split inter or --folds K)", source
            )
        if self.valid_fold is not None and self.train_file:
            raise BeatlabError("'valid_fold' needs a database, not --train-file", source)
        if not self.validate and (self.valid_fold is not None or self.valid_file):
            which = "valid_fold" if self.valid_fold is not None else "--valid-file"
            raise BeatlabError(f"'validate = false' leaves no validation part for {which}", source)
        if self.sampler == "balanced" and self.balance not in ("oversample", "smote"):
            raise BeatlabError(
                f"sampler 'balanced' draws what balance oversample or smote would give, "
                f"but balance is '{self.balance}'",
                source,
            )
        if self.epoch_beats is not None and self.sampler != "balanced":
            raise BeatlabError("'epoch_beats' needs sampler 'balanced'", source)
        if self.freeze_backbone and not self.init_from:
            raise BeatlabError("'freeze_backbone' needs 'init_from' (--init-from RUN)", source)
        if (self.valid_file or self.test_file) and not self.train_file:
            raise BeatlabError("--valid-file and --test-file need --train-file", source)
        _check_data_names(self, source)
        if self.augment_rr_jitter and _layout_method(self.layout) != "centred":
            raise BeatlabError(
                f"augment_rr_jitter moves R-R taken relative to the local R-R, which layout "
                f"'{self.layout}' does not keep (use a centred layout, e.g. deviation_median_rr)",
                source,
            )
        if self.init_from:
            from beatlab.training.runs import transfer_model

            transfer_model(self)
            return
        from beatlab.models import check_model, model_defaults

        known = model_defaults(self.model)  # also refuses an unknown model
        fields = [f.name for f in dataclasses.fields(self)] + list(ALIASES)
        for key in self.hparams:
            close = difflib.get_close_matches(key, fields, n=1) if key not in known else []
            if close:  # a mistyped training setting would otherwise read as a hyperparameter
                raise BeatlabError(f"unknown setting '{key}'; did you mean '{close[0]}'?", source)
        if self.augment_rr_jitter and not {**known, **self.hparams}.get("use_rr"):
            raise BeatlabError(
                f"augment_rr_jitter moves the R-R features, which model '{self.model}' reads "
                "only with use_rr = true",
                source,
            )
        try:
            check_model(self.model, **self.hparams)
        except BeatlabError as err:
            raise BeatlabError(err.problem, source) from None
        self._check_trees(source)

    def _check_trees(self, source: str | Path | None) -> None:
        """What a tree model, fitted on all beats at once and never by gradients, cannot use, and
        `augment_copies`, which only it can."""
        from beatlab.models.trees import BoostedTrees

        if self.model != BoostedTrees.name:
            if self.augment_copies:
                raise BeatlabError(
                    f"augment_copies is for tree models: model '{self.model}' draws new "
                    "perturbations every batch (set augment_copies = 0)",
                    source,
                )
            return
        augmented = [key for key in AUGMENT_FIELDS if getattr(self, key)]
        if augmented and not self.augment_copies:
            raise BeatlabError(
                f"model '{self.model}' fits one fixed table of beats: set augment_copies = K to "
                f"add K perturbed copies to it, or {', '.join(f'{key} = 0' for key in augmented)}",
                source,
            )
        if self.augment_copies and not augmented:
            raise BeatlabError(
                "augment_copies needs an augment_* setting to perturb the copies with", source
            )
        if self.sampler != "full":
            raise BeatlabError(
                f"model '{self.model}' fits every training beat at once: sampler "
                f"'{self.sampler}' draws beats per epoch (balance the dataset with 'balance')",
                source,
            )


def check_options(values: dict[str, Any]) -> None:
    """Command-line values of other commands (`data`, `tune`) by the rules training uses, one at a
    time, so that an error names its option (`--seed`)."""
    for key, value in values.items():
        TrainConfig().updated({key: value}, f"--{key}")


def _check_data_names(config: TrainConfig, source: str | Path | None) -> None:
    """The database and beat-layout names, against their registries."""
    from beatlab.data import databases, layouts

    try:
        databases.parse_databases(config.db)
        layouts.get_layout(config.layout)
    except BeatlabError as err:
        raise BeatlabError(err.problem, source) from None


def _layout_method(name: str) -> str:
    from beatlab.data.layouts import get_layout

    return get_layout(name).method


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
    rule = RULES.get(key)
    if rule is not None and not rule[0](value):
        raise BeatlabError(f"'{key}' must be {rule[1]}, got {value!r}", source)
    choices = _choices(key)
    if choices is not None and (value.lower() if key == "optimizer" else value) not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        noun = "balancing" if key == "balance" else key
        raise BeatlabError(
            f"unknown {noun} '{value}'{hint} (choose from {', '.join(choices)})", source
        )
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
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise BeatlabError(f"{what} is not a text file (not UTF-8)", path) from None
    except OSError as err:
        raise BeatlabError(f"cannot read {what}: {err.strerror or err}", path) from None
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

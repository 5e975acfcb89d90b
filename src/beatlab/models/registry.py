"""timm-style registry: models are built by name from validated, JSON-serialisable hparams,
so configs, tuning search spaces and checkpoints can all refer to a model as plain data."""

from __future__ import annotations

import difflib
import numbers
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import numpy as np

from beatlab.errors import BeatlabError
from beatlab.models.base import BeatConfig, BeatModel, config_to_dict

_MODELS: dict[str, type[BeatModel]] = {}

M = TypeVar("M", bound=type[BeatModel])


def register_model(cls: M) -> M:
    """Class decorator: make `cls` buildable by `create_model(cls.name, ...)`."""
    if not cls.name or cls.name in _MODELS:
        raise ValueError(f"model class {cls.__name__} needs a unique name, got {cls.name!r}")
    _MODELS[cls.name] = cls
    return cls


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_defaults(name: str) -> dict[str, Any]:
    """Default hyperparameters of model `name` (tuples as lists, as in `BeatModel.hparams`)."""
    return config_to_dict(_lookup(name).config_cls())


def create_model(name: str, num_classes: int = 5, **hparams: Any) -> BeatModel:
    """Build model `name` with `num_classes` outputs; unset hparams take their defaults.

    Values are checked against the default's type: ints are accepted for floats, integral
    floats (e.g. 64.0 from a tuner) for ints, lists for tuples; anything else is an error."""
    cls = _lookup(name)
    num_classes = _coerce(num_classes, int, "num_classes", name)
    if num_classes < 1:
        raise BeatlabError(f"num_classes must be at least 1 for model '{name}', got {num_classes}")
    return cls(_make_config(cls, hparams), num_classes)


def check_model(name: str, **hparams: Any) -> None:
    """Raise what `create_model` would for a bad name or hyperparameter, without building the
    model: a mistyped setting fails before minutes of data loading, not after."""
    _make_config(_lookup(name), hparams)


def _lookup(name: str) -> type[BeatModel]:
    if name not in _MODELS:
        raise BeatlabError(
            f"unknown model {name!r}{_did_you_mean(name, list_models())}"
            f" (known: {', '.join(list_models())})"
        )
    return _MODELS[name]


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(word), known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _make_config(cls: type[BeatModel], hparams: dict[str, Any]) -> BeatConfig:
    types = get_type_hints(cls.config_cls)
    known = sorted(types)
    values: dict[str, Any] = {}
    for key, value in hparams.items():
        if key not in types:
            raise BeatlabError(
                f"unknown hyperparameter {key!r} for model {cls.name!r}"
                f"{_did_you_mean(key, known)} (known: {', '.join(known)})"
            )
        values[key] = _coerce(value, types[key], key, cls.name)
    try:
        return cls.config_cls(**values)
    except ValueError as e:
        raise BeatlabError(f"bad hyperparameters for model {cls.name!r}: {e}") from None


def _coerce(value: Any, kind: Any, key: str, model: str) -> Any:
    """Return `value` as exactly `kind` (bool, int, float, a fixed-length tuple, or tuple[X, ...]
    of any length), or raise."""
    is_bool = isinstance(value, bool | np.bool_)
    if kind is bool and is_bool:
        return bool(value)
    if kind is int and not is_bool:
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(float(value))
    if kind is float and not is_bool and isinstance(value, numbers.Real):
        return float(value)
    if get_origin(kind) is tuple and isinstance(value, list | tuple):
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, model) for v in value)
        if len(value) == len(args):
            return tuple(_coerce(v, a, key, model) for v, a in zip(value, args, strict=True))
    raise BeatlabError(
        f"hyperparameter {key!r} for model {model!r} must be {_type_name(kind)}, "
        f"got {type(value).__name__} {value!r}"
    )


_PLURAL = {bool: "bools", int: "ints", float: "numbers"}


def _type_name(kind: Any) -> str:
    if get_origin(kind) is tuple:
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_PLURAL.get(args[0], str(args[0]))}"
        return f"a list of {len(args)} ints"
    return {bool: "a bool", int: "an int", float: "a number"}.get(kind, str(kind))

"""What every beat classifier shares: encode the beat, optionally append RR intervals, classify.

Keeping the head a single final `nn.Linear` (and everything else "backbone") is what makes
transfer learning and freezing uniform across architectures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from beatlab import BEAT_LENGTH
from beatlab.errors import BeatlabError

RR_FEATURES = 3
"""R-R features per beat: previous, next and local R-R (in seconds, or relative to the patient's
rhythm: what each layout gives is in `beatlab.data.layouts.RR_MEANING`)."""


def check(ok: bool, problem: str) -> None:
    """Config validation; the registry turns the ValueError into a BeatlabError naming the model."""
    if not ok:
        raise ValueError(problem)


def check_positive(**values: int) -> None:
    for key, value in values.items():
        check(value >= 1, f"{key} must be at least 1, got {value}")


@dataclass(frozen=True)
class BeatConfig:
    """Hyperparameters every model accepts. Subclasses add their own and override defaults."""

    use_rr: bool = False
    rr_norm: bool = False
    """Standardise the R-R features (BatchNorm) before they join the beat's features: relative
    R-R (the centred layouts) varies by a few tenths around 1, too little to be heard beside
    dozens of convolutional features otherwise."""
    dropout: float = 0.0
    decision_weights: tuple[float, ...] = ()
    """One weight per class, multiplying its probability when the trained model decides (in eval
    mode only: the loss never sees them). A missed premature beat costs more than a false alarm,
    so a rare class can be weighted up after training, on held-out training patients, where
    weighting it up in the loss would over-fit its few patients; () decides by plain argmax.
    Training's validation decides without them (`plain_decisions`)."""

    def __post_init__(self) -> None:
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(
            all(math.isfinite(w) and w > 0 for w in self.decision_weights),
            f"decision_weights must all be above 0, got {list(self.decision_weights)}",
        )


@contextmanager
def plain_decisions(model: BeatModel) -> Iterator[None]:
    """The model decides by plain argmax inside: training validates, stops early and keeps its
    checkpoint on the model itself, since weighting a rare class up in validation would pick the
    epochs that over-call it; the weights are a rule for the trained model only."""
    model.decide = False
    try:
        yield
    finally:
        model.decide = True


def config_to_dict(config: BeatConfig) -> dict[str, Any]:
    """JSON-ready hparams: tuples become lists so a JSON round trip gives back an equal dict."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


class BeatModel(nn.Module):
    """Base class: subclasses build their layers, set `neck` and `head`, and define
    `forward_features`. RR features (if `use_rr`) are appended between the two."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[BeatConfig]] = BeatConfig

    neck: nn.Module  # dense layers between features (+RR) and the head; nn.Identity if none
    head: nn.Linear  # the final classifier, replaced by reset_head
    decision_bias: Tensor  # log of config.decision_weights, added to the logits in eval mode

    def __init__(self, config: BeatConfig, num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.use_rr = config.use_rr
        self.rr_in: nn.Module = (
            nn.BatchNorm1d(RR_FEATURES) if config.use_rr and config.rr_norm else nn.Identity()
        )
        self._check_decision_weights(num_classes)
        self.decide = True  # eval mode applies decision_weights (not inside plain_decisions)
        # Not persistent: the weights come from the config, so checkpoints stay as they were.
        self.register_buffer(
            "decision_bias",
            torch.tensor([math.log(w) for w in config.decision_weights], dtype=torch.float32),
            persistent=False,
        )

    @property
    def hparams(self) -> dict[str, Any]:
        """All hyperparameters incl. defaults: `create_model(m.name, num_classes=m.num_classes,
        **m.hparams)` rebuilds the same architecture."""
        return config_to_dict(self.config)

    @property
    def extra_features(self) -> int:
        """Width added to the features before the neck (the RR intervals, if used)."""
        return RR_FEATURES if self.use_rr else 0

    def forward_features(self, x: Tensor) -> Tensor:
        """(batch, BEAT_LENGTH) beats -> (batch, features)."""
        raise NotImplementedError

    def forward(self, x: Tensor, rr: Tensor | None = None) -> Tensor:
        """(batch, 187) float32 beats [+ (batch, 3) RR seconds] -> (batch, num_classes) logits.

        `rr` is ignored when the model was built without `use_rr`, so a data loader can always
        pass it."""
        if not torch.jit.is_tracing():  # traced sizes are tensors: checking them only warns
            self._check_inputs(x, rr)
        z = self.forward_features(x)
        if self.use_rr:
            assert rr is not None
            z = torch.cat([z, self.rr_in(rr.to(z.dtype))], dim=1)
        return self.decided(self.head(self.neck(z)))

    def decided(self, logits: Tensor) -> Tensor:
        """The logits the trained model decides on: + log(decision_weights) in eval mode, so that
        softmax gives w * probabilities, renormalised; as they are in training."""
        if self.training or not self.decide or not self.config.decision_weights:
            return logits
        return logits + self.decision_bias

    @property
    def beat_shape(self) -> tuple[int, ...]:
        """One beat's shape as the model reads it (an ensemble over several leads: one row
        per lead)."""
        return (BEAT_LENGTH,)

    @property
    def rr_shape(self) -> tuple[int, ...]:
        """One beat's R-R context as the model reads it: a row per row of the beat (an ensemble
        over several leads reads each lead's own R-R, cut at that lead's R peaks)."""
        return (*self.beat_shape[:-1], RR_FEATURES)

    def _check_inputs(self, x: Tensor, rr: Tensor | None) -> None:
        if tuple(x.shape[1:]) != self.beat_shape:
            shape = ", ".join(map(str, self.beat_shape))
            raise BeatlabError(
                f"model '{self.name}' expects beats shaped (batch, {shape}), got {tuple(x.shape)}"
            )
        if self.use_rr and (rr is None or tuple(rr.shape) != (x.shape[0], *self.rr_shape)):
            got = None if rr is None else tuple(rr.shape)
            shape = ", ".join(map(str, self.rr_shape))
            raise BeatlabError(
                f"model '{self.name}' was built with use_rr=True and needs rr shaped "
                f"(batch, {shape}) = {(x.shape[0], *self.rr_shape)}, got {got}"
            )

    def reset_head(self, num_classes: int) -> None:
        """Swap in a freshly initialised classifier (transfer learning); the backbone is kept."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise BeatlabError(f"num_classes must be a positive int, got {num_classes!r}")
        self._check_decision_weights(num_classes)
        old = self.head
        self.head = nn.Linear(
            old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )
        self.num_classes = num_classes

    def _check_decision_weights(self, num_classes: int) -> None:
        given = len(self.config.decision_weights)
        if given and given != num_classes:
            raise BeatlabError(
                f"model '{self.name}': decision_weights holds {given} weights for "
                f"{num_classes} classes (give one per class, or --set decision_weights=[] to "
                "decide by plain argmax)"
            )

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the head's, e.g. to freeze them or give them a lower LR."""
        in_head = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in in_head)

"""The mean of several trained models, of one architecture or several: what `beatlab ensemble`
builds.

Not in the registry: an ensemble is assembled from finished runs, never trained from scratch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from typing import Any, TypeGuard, cast

import torch
from torch import Tensor, nn

from beatlab import BEAT_LENGTH
from beatlab.data.databases import find_lead
from beatlab.models.base import BeatModel


class MeanEnsemble(BeatModel):
    """Averages its members' class probabilities and returns their log, so that softmax and
    argmax of its output read like any model's logits (and an ONNX export holds one graph).

    It decides with its own `decision_weights` (by default the first member's) on the mean of
    its members' plain probabilities: averaging pulls a rare class's probability down, so an
    ensemble's weight is chosen for the ensemble, not taken from its members."""

    name = "ensemble"

    def __init__(
        self,
        members: list[BeatModel],
        decision_weights: tuple[float, ...] | None = None,
        channels: list[int] | None = None,
        weights: list[float] | None = None,
    ) -> None:
        """`channels`: for members trained on different leads, which lead (row of a beat) each
        member reads; None: they all read the same one-lead beats. `weights`: each member's
        weight in the mean (scikit-learn's VotingClassifier `weights`); None: equal."""
        first = members[0]
        config = first.config
        if decision_weights is not None:
            config = dataclasses.replace(config, decision_weights=tuple(decision_weights))
        super().__init__(config, first.num_classes)
        self.rr_in = nn.Identity()  # each member standardises the R-R features itself
        for member in members:
            member.decide = False
        self.members = nn.ModuleList(members)
        if channels is not None and (
            len(channels) != len(members) or sorted(set(channels)) != list(range(max(channels) + 1))
        ):
            raise ValueError(f"channels {channels} for {len(members)} members")
        self.channels = list(channels) if channels else None
        if weights is not None and (
            len(weights) != len(members) or not all(0 < w < math.inf for w in weights)
        ):
            raise ValueError(f"weights {weights} for {len(members)} members: one above 0 each")
        self.weights = [float(w) for w in weights] if weights is not None else None
        share = torch.tensor(self.weights or [1.0] * len(members))
        self.register_buffer("share", share / share.sum(), persistent=False)

    @property
    def beat_shape(self) -> tuple[int, ...]:
        if self.channels is None:
            return (BEAT_LENGTH,)
        return (max(self.channels) + 1, BEAT_LENGTH)

    @property
    def hparams(self) -> dict[str, Any]:
        """The members' model and settings where they share them, else each member's model."""
        members = [m for m in self.members if isinstance(m, BeatModel)]
        own: dict[str, Any] = {"decision_weights": list(self.config.decision_weights)}
        own |= {"member_weights": self.weights} if self.weights else {}
        leads = {"channels": self.channels} if self.channels else {}
        if len({m.name for m in members}) > 1:
            return {"members": len(members), "member": [m.name for m in members], **own, **leads}
        first = members[0].hparams
        return {"members": len(members), "member": members[0].name, **first, **own, **leads}

    def forward(self, x: Tensor, rr: Tensor | None = None) -> Tensor:
        if not torch.jit.is_tracing():
            self._check_inputs(x, rr)
        if self.channels is None:
            inputs = [(x, rr)] * len(self.members)
        else:
            inputs = [(x[:, c], None if rr is None else rr[:, c]) for c in self.channels]
        each = torch.stack(
            [m(*read).softmax(dim=1) for m, read in zip(self.members, inputs, strict=True)]
        )
        proba = each.mean(dim=0) if self.weights is None else torch.tensordot(self.share, each, 1)
        return self.decided(proba.clamp_min(1e-12).log())

    def reading(self, channels: list[int]) -> MeanEnsemble:
        """The ensemble of the members that read one of `channels`, deciding with the same
        weights: for a record without some of the leads (a one-lead recording), the members
        that can read it, rather than none. Their rows are renumbered in the order given."""
        assert self.channels is not None
        keep = [i for i, c in enumerate(self.channels) if c in channels]
        members = [cast(BeatModel, self.members[i]) for i in keep]
        rows = [channels.index(self.channels[i]) for i in keep] if len(channels) > 1 else None
        weights = [self.weights[i] for i in keep] if self.weights else None
        return MeanEnsemble(members, self.config.decision_weights, rows, weights)

    def reset_head(self, num_classes: int) -> None:
        raise NotImplementedError("an ensemble has no single head: transfer from one member")


def over_leads(model: BeatModel) -> TypeGuard[MeanEnsemble]:
    """Whether `model` is an ensemble whose members read different leads."""
    return isinstance(model, MeanEnsemble) and model.channels is not None


def members_reading(
    model: BeatModel, choices: list[tuple[str, ...]], leads: Collection[str], where: str, done: str
) -> tuple[BeatModel, list[int], str]:
    """`model` and every channel of `choices` (a lead's names to look for, per channel), or, for
    an ensemble over leads where `leads` (what a record or database has) hold none of some
    channel's names, the members that read the others, those channels and a line saying so
    (`where` has none of the leads ...: `done` by ...): fewer members rather than none."""
    present = [c for c, wanted in enumerate(choices) if find_lead(wanted, leads)]
    if not over_leads(model) or not present or len(present) == len(choices):
        return model, list(range(len(choices))), ""
    fewer = model.reading(present)
    missing = "; ".join(", ".join(c) for i, c in enumerate(choices) if i not in present)
    return (
        fewer,
        present,
        f"{where} has none of the leads {missing}: {done} by the {len(fewer.members)} of the "
        f"ensemble's {len(model.members)} members that read the leads it has (--lead names "
        "others to read instead)",
    )

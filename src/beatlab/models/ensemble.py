"""The mean of several trained models of one architecture: what `beatlab ensemble` builds.

Not in the registry: an ensemble is assembled from finished runs, never trained from scratch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from beatlab.models.base import BeatModel


class MeanEnsemble(BeatModel):
    """Averages its members' class probabilities and returns their log, so that softmax and
    argmax of its output read like any model's logits (and an ONNX export holds one graph)."""

    name = "ensemble"

    def __init__(self, members: list[BeatModel]) -> None:
        first = members[0]
        super().__init__(first.config, first.num_classes)
        self.rr_in = nn.Identity()  # each member standardises the R-R features itself
        self.members = nn.ModuleList(members)

    @property
    def hparams(self) -> dict[str, Any]:
        first = self.members[0]
        assert isinstance(first, BeatModel)
        return {"members": len(self.members), "member": first.name, **first.hparams}

    def forward(self, x: Tensor, rr: Tensor | None = None) -> Tensor:
        if not torch.jit.is_tracing():
            self._check_inputs(x, rr)
        proba = torch.stack([m(x, rr).softmax(dim=1) for m in self.members]).mean(dim=0)
        return proba.clamp_min(1e-12).log()

    def reset_head(self, num_classes: int) -> None:
        raise NotImplementedError("an ensemble has no single head: transfer from one member")

"""Epochs drawn from the balanced distribution instead of a materialised balanced set.

Random oversampling and SMOTE both turn the training part into a set in which every class is as
large as the largest; an epoch then visits ~5x the beats of the real training part (326k for the
intra split), which is what makes the study's settings slow on a CPU. `sampler="balanced"` keeps
the training part as it is and draws each epoch's `epoch_beats` beats from the same distribution
the balanced set would give: a class uniformly, then a beat of it uniformly; with SMOTE, that beat
is, at the share of the class SMOTE would synthesise, replaced by SMOTE's interpolation towards
one of its k nearest same-class neighbours at a uniform gap. What a setting means stays the same;
only the number of beats an epoch visits becomes a choice.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError

K_NEIGHBOURS = 5
"""SMOTE's default k (imbalanced-learn's, and `beatlab.data.balance`'s)."""


class BalancedSampler:
    """Draws one epoch of `beats` beats at a time from the balanced distribution of `method`
    (oversample or smote) over the unbalanced training part `train`."""

    def __init__(self, train: Beats, method: str, beats: int | None = None) -> None:
        if method not in ("oversample", "smote"):
            raise BeatlabError(
                f"sampler 'balanced' draws what balance 'oversample' or 'smote' would give, "
                f"not balance '{method}'"
            )
        self.x = torch.from_numpy(np.ascontiguousarray(train.x, dtype=np.float32))
        self.rr = torch.from_numpy(np.ascontiguousarray(train.rr, dtype=np.float32))
        self.y = torch.from_numpy(train.y.astype(np.int64))
        self.median = None if train.median is None else torch.from_numpy(np.array(train.median))
        counts = np.bincount(train.y)
        self.classes = np.flatnonzero(counts)
        target = int(counts.max())
        self.beats = int(beats or target * len(self.classes))
        """The balanced set's size unless given: an epoch then means what it meant before."""
        members = [np.flatnonzero(train.y == c) for c in self.classes]
        self.counts = torch.tensor([len(m) for m in members])
        self.offsets = torch.tensor(np.cumsum([0] + [len(m) for m in members[:-1]]))
        self.members = torch.from_numpy(np.concatenate(members))
        self.synthetic = torch.zeros(len(self.classes))
        self.neighbours: torch.Tensor | None = None
        if method == "smote":
            self.synthetic = 1 - self.counts / target
            self.neighbours = self._neighbours(train, members)

    @staticmethod
    def _neighbours(train: Beats, members: list[np.ndarray]) -> torch.Tensor:
        """Each beat's k nearest same-class neighbours over samples and R-R together, as SMOTE
        finds them (the largest class is never synthesised: its rows stay empty)."""
        k = min(K_NEIGHBOURS, min(len(m) for m in members) - 1)
        if k < 1:
            raise BeatlabError("SMOTE needs at least two training beats of every class")
        features = np.concatenate([train.x, train.rr], axis=1)
        table = np.zeros((len(train), k), dtype=np.int64)
        largest = max(len(m) for m in members)
        for m in members:
            if len(m) < largest:
                found = NearestNeighbors(n_neighbors=k + 1).fit(features[m])
                table[m] = m[found.kneighbors(features[m], return_distance=False)[:, 1:]]
        return torch.from_numpy(table)

    def __call__(
        self, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One epoch's beats, labels, R-R and the beats' record medians (`Beats.median`), drawn
        with `generator` (so a resumed run draws the same)."""
        n = self.beats
        cls = torch.randint(len(self.classes), (n,), generator=generator)
        pick = (torch.rand(n, generator=generator) * self.counts[cls]).long()
        a = self.members[self.offsets[cls] + pick]
        x, rr, y = self.x[a], self.rr[a], self.y[a]
        median = None if self.median is None else self.median[a]
        if self.neighbours is not None:
            synth = torch.rand(n, generator=generator) < self.synthetic[cls]
            col = torch.randint(self.neighbours.shape[1], (n,), generator=generator)
            gap = torch.rand(n, 1, generator=generator)
            b = self.neighbours[a, col][synth]
            x[synth] += gap[synth] * (self.x[b] - x[synth])
            rr[synth] += gap[synth] * (self.rr[b] - rr[synth])
            if median is not None and self.median is not None:
                median[synth] += gap[synth] * (self.median[b] - median[synth])
        return x, y, rr, median


def epoch_sampler(
    train: Beats, sampler: str, balance: str, beats: int | None
) -> BalancedSampler | None:
    """The config's per-epoch sampler, or None for `full` (every training beat once)."""
    if sampler == "full":
        return None
    return BalancedSampler(train, balance, beats)

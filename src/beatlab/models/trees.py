"""Gradient-boosted trees on a beat and its R-R context, as a beatlab model.

scikit-learn's HistGradientBoostingClassifier fits the trees (`beatlab.training.trees`); their
nodes are then held here as tensors and walked in torch. So a tree model is a model like the
networks: its checkpoint is safetensors, it joins `beatlab ensemble`, classifies records in
`beatlab predict` and exports to ONNX, through the same code. Why trees: on held-out MIT-BIH DS1
patients a boosted-tree learner on R-R plus every 6th sample of the beat found more premature
beats than the CNNs did (benchmarks/representation.py, docs/new_patients.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from beatlab.errors import BeatlabError
from beatlab.models.base import BeatConfig, BeatModel, check, check_positive
from beatlab.models.registry import register_model

ABSENT = -30.0
"""Logit of a class the training beats did not hold: its probability is about 1e-13."""


@dataclass(frozen=True)
class BoostedTreesConfig(BeatConfig):
    use_rr: bool = True
    rounds: int = 150
    """Boosting rounds fitted, one tree per class each; the round kept is chosen on the
    validation part by the run's `monitor` (rounds play the part of epochs)."""
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    stride: int = 6
    """Every `stride`-th sample of the beat is a feature: a tree splits on one sample at a
    time, so fewer samples fit faster. The model for new recordings reads every 3rd, a rate
    above twice its beats' 40 Hz band (docs/new_patients.md, thirty-first session)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(rounds=self.rounds, stride=self.stride)
        check(
            0 < self.learning_rate <= 1,
            f"learning_rate must be in (0, 1], got {self.learning_rate}",
        )
        check(
            self.max_leaf_nodes >= 2,
            f"max_leaf_nodes must be at least 2, got {self.max_leaf_nodes}",
        )
        check(
            self.min_samples_leaf >= 1,
            f"min_samples_leaf must be at least 1, got {self.min_samples_leaf}",
        )
        check(
            self.l2_regularization >= 0,
            f"l2_regularization must be at least 0, got {self.l2_regularization}",
        )
        check(self.dropout == 0, "dropout does not apply to trees (leave it at 0)")
        check(not self.rr_norm, "rr_norm does not apply to trees: they split on any scale")


@register_model
class BoostedTrees(BeatModel):
    """R-R features + every `stride`-th beat sample -> `rounds` x classes regression trees ->
    logits (the sum of each class's leaves, plus a baseline), as scikit-learn computes them.

    The tensors have one row per tree and one column per node, sized by the hyperparameters, so
    that `create_model` builds a model any checkpoint of the same hyperparameters loads into.
    Trees of rounds not kept are single leaves of value 0, and not walked. A node's children are
    flat indices into the (trees x nodes) table; a leaf is its own child, so every beat can be
    walked the same number of steps (the deepest tree's depth) with no branching in the graph."""

    name = "gbt"
    config_cls = BoostedTreesConfig

    def __init__(self, config: BoostedTreesConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        self.stride = config.stride
        trees, nodes = config.rounds * num_classes, 2 * config.max_leaf_nodes - 1
        self.register_buffer("feature", torch.zeros(trees, nodes, dtype=torch.int64))
        self.register_buffer("threshold", torch.zeros(trees, nodes))
        self.register_buffer("missing_left", torch.zeros(trees, nodes, dtype=torch.bool))
        self.register_buffer("left", torch.zeros(trees, nodes, dtype=torch.int64))
        self.register_buffer("right", torch.zeros(trees, nodes, dtype=torch.int64))
        self.register_buffer("value", torch.zeros(trees, nodes))
        self.register_buffer("baseline", torch.zeros(num_classes))
        self.register_buffer("depth", torch.zeros((), dtype=torch.int64))
        self.register_buffer("kept", torch.zeros((), dtype=torch.int64))
        self.clear()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.sync())

    feature: Tensor
    threshold: Tensor
    missing_left: Tensor
    left: Tensor
    right: Tensor
    value: Tensor
    baseline: Tensor
    depth: Tensor
    kept: Tensor  # rounds kept: the trees of later rounds are single leaves of value 0

    def clear(self) -> None:
        """Every tree a single leaf of value 0: the unfitted model calls every class alike."""
        flat = torch.arange(self.value.numel()).view_as(self.value)
        self.left.copy_(flat)
        self.right.copy_(flat)
        self.feature.zero_()
        self.threshold.fill_(float("inf"))
        self.missing_left.fill_(True)
        self.value.zero_()
        self.baseline.zero_()
        self.depth.zero_()
        self.kept.zero_()
        self.sync()

    def sync(self) -> None:
        """The steps `forward` walks and the trees it walks (those of the rounds kept), as plain
        ints: an exported graph unrolls the steps, and a model that kept 10 of 150 rounds walks
        a fifteenth of the table."""
        self.steps, self.trees = int(self.depth), int(self.kept) * self.num_classes

    def features(self, x: Tensor, rr: Tensor | None) -> Tensor:
        """(batch, 187) beats [+ (batch, 3) R-R] -> (batch, features), what the trees split on."""
        beat = x[:, :: self.stride]
        if not self.use_rr:
            return beat
        assert rr is not None
        return torch.cat([rr.to(beat.dtype), beat], dim=1)

    def forward(self, x: Tensor, rr: Tensor | None = None) -> Tensor:
        if not torch.jit.is_tracing():
            self._check_inputs(x, rr)
        feats = self.features(x, rr)
        nodes = self.value.shape[1]
        start = torch.arange(self.trees, device=x.device) * nodes
        node = torch.zeros_like(feats[:, :1], dtype=torch.int64) + start  # (batch, trees)
        feature, threshold = self.feature.view(-1), self.threshold.view(-1)
        missing_left, left, right = (
            self.missing_left.view(-1),
            self.left.view(-1),
            self.right.view(-1),
        )
        for _ in range(self.steps):
            v = feats.gather(1, feature[node])
            go_left = (v <= threshold[node]) | (torch.isnan(v) & missing_left[node])
            node = torch.where(go_left, left[node], right[node])
        leaves = self.value.view(-1)[node].unflatten(1, (-1, self.num_classes))
        return self.decided(leaves.sum(dim=1) + self.baseline)

    @torch.no_grad()
    def load_estimator(self, estimator: Any, rounds: int) -> None:
        """Take the first `rounds` rounds of a fitted HistGradientBoostingClassifier whose
        classes are class indices of this model. (It reads the estimator's fitted trees, which
        scikit-learn keeps in private attributes: tests compare the two models' probabilities.)"""
        self.clear()
        classes = [int(c) for c in estimator.classes_]
        # two classes: one tree per round, the log-odds of the second against the first
        slots = classes if len(classes) > 2 else classes[1:]
        baseline = np.full(self.num_classes, ABSENT)
        baseline[classes] = 0.0
        baseline[slots] = np.asarray(estimator._baseline_prediction).ravel()
        self.baseline.copy_(torch.from_numpy(baseline))
        nodes_per_tree = self.value.shape[1]
        depth = 0
        for r, predictors in enumerate(estimator._predictors[:rounds]):
            for slot, predictor in zip(slots, predictors, strict=True):
                tree = r * self.num_classes + slot
                table = predictor.nodes
                if table["is_categorical"].any():
                    raise BeatlabError("trees with categorical splits cannot be compiled")
                n, base = len(table), tree * nodes_per_tree
                own = base + np.arange(n)
                leaf = table["is_leaf"].astype(bool)
                cut = table["num_threshold"]
                below = cut.astype(np.float32)  # the largest float32 at or below the cut: the
                below = np.where(below > cut, np.nextafter(below, -np.inf), below)  # same test
                row = {
                    "feature": np.where(leaf, 0, table["feature_idx"]),
                    "threshold": np.where(leaf, np.inf, below),
                    "missing_left": table["missing_go_to_left"].astype(bool) | leaf,
                    "left": np.where(leaf, own, base + table["left"]),
                    "right": np.where(leaf, own, base + table["right"]),
                    "value": np.where(leaf, table["value"], 0.0),
                }
                for key, values in row.items():
                    getattr(self, key)[tree, :n] = torch.from_numpy(np.asarray(values)).to(
                        getattr(self, key).dtype
                    )
                depth = max(depth, int(table["depth"].max()))
        self.depth.fill_(depth)
        self.kept.fill_(len(estimator._predictors[:rounds]))
        self.sync()

    def reset_head(self, num_classes: int) -> None:
        raise BeatlabError("a tree model has no head to replace: train it anew for the task")

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())  # fitted, not trained by gradients: nothing to freeze

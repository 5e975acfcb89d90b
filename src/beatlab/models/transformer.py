"""ViT-style transformer on the folded beat: each patch of the grid is one token."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from beatlab.models.base import BeatConfig, BeatModel, check, check_positive
from beatlab.models.layers import FoldBeat, check_grid
from beatlab.models.registry import register_model


@dataclass(frozen=True)
class Transformer2dConfig(BeatConfig):
    dropout: float = 0.1
    hidden: int = 64
    heads: int = 4
    num_layers: int = 2
    grid: tuple[int, int] = (16, 12)
    patch: tuple[int, int] = (4, 4)  # 16x12 grid -> 4x3 = 12 tokens of 16 samples

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(hidden=self.hidden, heads=self.heads, num_layers=self.num_layers)
        check(
            self.hidden % self.heads == 0,
            f"hidden={self.hidden} must be divisible by heads={self.heads}",
        )
        check_grid(self.grid)
        check(min(self.patch) >= 1, f"patch sides must be at least 1, got {list(self.patch)}")
        check(
            self.grid[0] % self.patch[0] == 0 and self.grid[1] % self.patch[1] == 0,
            f"patch {list(self.patch)} must divide grid {list(self.grid)}",
        )


@register_model
class Transformer2d(BeatModel):
    """Conv patch embedding + learned positions + pre-LN encoder layers + mean pooling."""

    name = "transformer2d"
    config_cls = Transformer2dConfig

    def __init__(self, config: Transformer2dConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        c = config
        tokens = (c.grid[0] // c.patch[0]) * (c.grid[1] // c.patch[1])
        self.fold = FoldBeat(c.grid)
        self.embed = nn.Conv2d(1, c.hidden, kernel_size=c.patch, stride=c.patch)
        self.flatten = nn.Flatten(2)  # (B, hidden, rows', cols') -> (B, hidden, tokens)
        self.pos = nn.Parameter(torch.empty(1, tokens, c.hidden))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(c.dropout)
        # A plain ModuleList (not nn.TransformerEncoder) keeps the layers' slow path, whose
        # sub-modules forward hooks can see, and avoids the nested-tensor warning.
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.hidden,
                c.heads,
                dim_feedforward=4 * c.hidden,
                dropout=c.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.hidden)
        self.neck = nn.Identity()
        self.head = nn.Linear(c.hidden + self.extra_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        t = self.flatten(self.embed(self.fold(x))).transpose(1, 2)  # (B, tokens, hidden)
        t = self.drop(t + self.pos)
        for layer in self.layers:
            t = layer(t)
        return self.norm(t).mean(dim=1)

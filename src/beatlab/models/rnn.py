"""Recurrent baseline: a GRU reading the beat sample by sample (or `chunk` samples per step)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from beatlab import BEAT_LENGTH
from beatlab.models.base import BeatConfig, BeatModel, check, check_positive
from beatlab.models.registry import register_model


@dataclass(frozen=True)
class GruConfig(BeatConfig):
    dropout: float = 0.2
    hidden: int = 64
    num_layers: int = 2
    chunk: int = 1
    layer_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(hidden=self.hidden, num_layers=self.num_layers, chunk=self.chunk)
        check(self.chunk <= BEAT_LENGTH, f"chunk must be at most {BEAT_LENGTH}, got {self.chunk}")


@register_model
class Gru(BeatModel):
    """No convolutions: shows what recurrence alone gets from the raw beat."""

    name = "gru"
    config_cls = GruConfig

    def __init__(self, config: GruConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        c = config
        self.chunk = c.chunk
        self.gru = nn.GRU(
            c.chunk,
            c.hidden,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.norm = nn.LayerNorm(c.hidden) if c.layer_norm else nn.Identity()
        self.drop = nn.Dropout(c.dropout)
        self.neck = nn.Identity()
        self.head = nn.Linear(c.hidden + self.extra_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        # Left-pad to a multiple of `chunk` so the last step (the one we keep) is real signal.
        x = F.pad(x, (-x.shape[1] % self.chunk, 0))
        h, _ = self.gru(x.reshape(x.shape[0], -1, self.chunk))  # (B, steps, hidden)
        return self.drop(self.norm(h[:, -1]))

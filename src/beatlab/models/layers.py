"""Building blocks shared by several architectures."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from beatlab import BEAT_LENGTH
from beatlab.models.base import check


class ResBlock(nn.Module):
    """The study's ResNet block: two (conv, ReLU, BatchNorm) layers plus an identity skip.
    `dim` picks 1D (beat as a sequence) or 2D (beat folded into a grid)."""

    def __init__(self, channels: int, dim: int, kernel: int = 3) -> None:
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        self.conv1 = conv(channels, channels, kernel, padding=kernel // 2)
        self.act1 = nn.ReLU()
        self.bn1 = norm(channels)
        self.conv2 = conv(channels, channels, kernel, padding=kernel // 2)
        self.act2 = nn.ReLU()
        self.bn2 = norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn1(self.act1(self.conv1(x)))
        y = self.bn2(self.act2(self.conv2(y)))
        return x + y


class FoldBeat(nn.Module):
    """Zero-pad a (batch, 187) beat at the end and fold it row-major into a (batch, 1, rows,
    cols) image, so 2D convolutions see samples one row apart (about a heartbeat phase)."""

    def __init__(self, grid: tuple[int, int]) -> None:
        super().__init__()
        self.rows, self.cols = grid

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, self.rows * self.cols - x.shape[1]))
        return x.reshape(-1, 1, self.rows, self.cols)

    def extra_repr(self) -> str:
        return f"grid=({self.rows}, {self.cols})"


def check_grid(grid: tuple[int, int]) -> None:
    rows, cols = grid
    check(rows >= 1 and cols >= 1, f"grid sides must be at least 1, got {list(grid)}")
    check(
        rows * cols >= BEAT_LENGTH,
        f"grid {rows}x{cols} holds {rows * cols} samples, fewer than the {BEAT_LENGTH} of a beat",
    )

"""2D models: the beat folded into a grid so that convolutions mix nearby and row-apart samples."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from beatlab.models.base import BeatConfig, BeatModel, check, check_positive
from beatlab.models.layers import FoldBeat, ResBlock, check_grid
from beatlab.models.registry import register_model


@dataclass(frozen=True)
class Cnn2dResNetConfig(BeatConfig):
    dropout: float = 0.3
    hidden: int = 128
    num_blocks: int = 1
    num_layers: int = 3
    grid: tuple[int, int] = (16, 12)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(hidden=self.hidden, num_layers=self.num_layers)
        check(self.num_blocks >= 0, f"num_blocks must be at least 0, got {self.num_blocks}")
        check_grid(self.grid)
        check(
            min(self.grid) >= 2,
            f"grid sides must be at least 2 for MaxPool2d(2), got {list(self.grid)}",
        )


@register_model
class Cnn2dResNet(BeatModel):
    """Folded beat -> conv stem -> 2D ResNet blocks -> pool -> `num_layers` dense layers."""

    name = "cnn2d_resnet"
    config_cls = Cnn2dResNetConfig

    def __init__(self, config: Cnn2dResNetConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        c = config
        self.fold = FoldBeat(c.grid)
        self.stem = nn.Sequential(
            nn.Conv2d(1, c.hidden, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c.hidden)
        )
        self.blocks = nn.Sequential(*[ResBlock(c.hidden, dim=2) for _ in range(c.num_blocks)])
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        width = c.hidden * (c.grid[0] // 2) * (c.grid[1] // 2) + self.extra_features
        dense: list[nn.Module] = []
        for _ in range(c.num_layers):
            dense += [nn.Linear(width, c.hidden), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.hidden
        self.neck = nn.Sequential(*dense)
        self.head = nn.Linear(c.hidden, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.flatten(self.pool(self.blocks(self.stem(self.fold(x)))))

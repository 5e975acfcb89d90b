"""1D convolutional models: the beat as a one-channel sequence of 187 samples."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from beatlab import BEAT_LENGTH
from beatlab.models.base import BeatConfig, BeatModel, check, check_positive
from beatlab.models.layers import ResBlock
from beatlab.models.registry import register_model

GRU_INPUT = 128  # per-time-step projection width fed to the GRU (fixed in the study)
DENSE = 128  # width of the dense layer before the head (fixed in the study)


@dataclass(frozen=True)
class Cnn1dGruConfig(BeatConfig):
    dropout: float = 0.4
    hidden: int = 64
    num_blocks: int = 5
    gru_hidden: int = 256
    num_layers: int = 2
    layer_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(hidden=self.hidden, gru_hidden=self.gru_hidden, num_layers=self.num_layers)
        check(self.num_blocks >= 0, f"num_blocks must be at least 0, got {self.num_blocks}")


@register_model
class Cnn1dGru(BeatModel):
    """CNN front end for local wave shape, GRU on top for the order of P-QRS-T."""

    name = "cnn1d_gru"
    config_cls = Cnn1dGruConfig

    def __init__(self, config: Cnn1dGruConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        c = config
        self.stem = nn.Sequential(
            nn.Conv1d(1, c.hidden, 3, stride=1, padding=1), nn.ReLU(), nn.BatchNorm1d(c.hidden)
        )
        self.blocks = nn.Sequential(*[ResBlock(c.hidden, dim=1) for _ in range(c.num_blocks)])
        self.pool = nn.MaxPool1d(2)
        self.proj = nn.Linear(c.hidden, GRU_INPUT)  # applied to every time step
        self.gru = nn.GRU(
            GRU_INPUT,
            c.gru_hidden,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.norm = nn.LayerNorm(c.gru_hidden) if c.layer_norm else nn.Identity()
        self.neck = nn.Sequential(
            nn.Linear(c.gru_hidden + self.extra_features, DENSE), nn.ReLU(), nn.Dropout(c.dropout)
        )
        self.head = nn.Linear(DENSE, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        h = self.pool(self.blocks(self.stem(x.unsqueeze(1))))  # (B, hidden, T)
        h = self.proj(h.transpose(1, 2))  # (B, T, 128)
        h, _ = self.gru(h)  # (B, T, gru_hidden)
        return self.norm(h[:, -1])  # last time step has seen the whole beat


@dataclass(frozen=True)
class Cnn1dResNetConfig(BeatConfig):
    dropout: float = 0.0
    filters: int = 32
    kernel: int = 5
    num_blocks: int = 5
    dense: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(filters=self.filters, dense=self.dense)
        check(self.kernel >= 1 and self.kernel % 2 == 1, f"kernel must be odd, got {self.kernel}")
        check(self.num_blocks >= 0, f"num_blocks must be at least 0, got {self.num_blocks}")
        check(
            kachuee_length(self.num_blocks) >= 1,
            f"num_blocks={self.num_blocks} pools a {BEAT_LENGTH}-sample beat away to nothing "
            f"(at most {MAX_KACHUEE_BLOCKS})",
        )


def kachuee_length(num_blocks: int, length: int = BEAT_LENGTH) -> int:
    """Length after `num_blocks` MaxPool1d(5, stride 2): 187 -> 92 -> 44 -> 20 -> 8 -> 2."""
    for _ in range(num_blocks):
        length = (length - 5) // 2 + 1
    return length


MAX_KACHUEE_BLOCKS = max(n for n in range(BEAT_LENGTH) if kachuee_length(n) >= 1)


class KachueeBlock(nn.Module):
    """conv-ReLU-conv + skip, ReLU, MaxPool1d(5, stride 2) (Kachuee et al. 2018, fig. 2)."""

    def __init__(self, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(filters, filters, kernel, padding=kernel // 2)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv1d(filters, filters, kernel, padding=kernel // 2)
        self.act2 = nn.ReLU()
        self.pool = nn.MaxPool1d(5, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.act1(self.conv1(x)))
        return self.pool(self.act2(x + y))


@register_model
class Cnn1dResNet(BeatModel):
    """Kachuee et al. 2018, "ECG Heartbeat Classification: A Deep Transferable Representation":
    the published baseline for these 187-sample beats (~93% on MIT-BIH)."""

    name = "cnn1d_resnet"
    config_cls = Cnn1dResNetConfig

    def __init__(self, config: Cnn1dResNetConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        c = config
        self.stem = nn.Conv1d(1, c.filters, c.kernel, padding=c.kernel // 2)
        self.blocks = nn.Sequential(
            *[KachueeBlock(c.filters, c.kernel) for _ in range(c.num_blocks)]
        )
        self.flatten = nn.Flatten()
        flat = c.filters * kachuee_length(c.num_blocks)
        self.neck = nn.Sequential(
            nn.Linear(flat + self.extra_features, c.dense),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.dense, c.dense),
            nn.ReLU(),
            nn.Dropout(c.dropout),
        )
        self.head = nn.Linear(c.dense, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.flatten(self.blocks(self.stem(x.unsqueeze(1))))

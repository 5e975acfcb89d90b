"""Training throughput: beatlab's tensor-sliced loop vs a plain DataLoader(TensorDataset) loop.

    python benchmarks/train_throughput.py [--batch 128] [--beats 8192] [--repeat 2] [--data-dir DIR]

Both loops train the same model (same init, same optimiser, same batch size) on the same real
beats in the same process, alternately, `--repeat` times each (best kept, so neither pays the
first run's warm-up); the script prints samples/s of each and the ratio, per model. The "small"
sizes are the ones a CPU user would pick; pass --defaults to use each model's defaults. It first
times the data path alone (a batch of beats, R-R and labels per step, no model), which is all
that differs between the loops: when a model's step costs much more than that, the ratio
tends to 1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from beatlab.data.dataset import load_dataset
from beatlab.errors import script
from beatlab.models import create_model, list_models
from beatlab.training.config import TrainConfig
from beatlab.training.trainer import fit

SMALL: dict[str, dict[str, object]] = {
    "cnn1d_resnet": {},
    "transformer2d": {"hidden": 32, "num_layers": 1},
    "cnn2d_resnet": {"hidden": 16, "num_layers": 2},
    "cnn1d_gru": {"hidden": 16, "num_blocks": 1, "gru_hidden": 32, "num_layers": 1},
    "gru": {"hidden": 32, "num_layers": 1, "chunk": 11},
}


def plain_loop(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, rr: torch.Tensor, batch: int, epochs: int
) -> float:
    """The textbook loop: DataLoader over a TensorDataset, default collate; returns seconds."""
    loader = DataLoader(TensorDataset(x, rr, y), batch_size=batch, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, rb, yb in loader:
            loss = loss_fn(model(xb, rb), yb)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    return time.perf_counter() - start


def data_path_ms(
    x: torch.Tensor, y: torch.Tensor, rr: torch.Tensor, batch: int
) -> tuple[float, float]:
    """Milliseconds per batch to produce shuffled batches: DataLoader vs a permutation sliced."""
    loader = DataLoader(TensorDataset(x, rr, y), batch_size=batch, shuffle=True)
    steps = (len(y) + batch - 1) // batch
    start = time.perf_counter()
    for _ in loader:
        pass
    theirs = time.perf_counter() - start
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        _ = x[idx], rr[idx], y[idx]
    ours = time.perf_counter() - start
    return 1e3 * theirs / steps, 1e3 * ours / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--beats", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each loop")
    parser.add_argument("--defaults", action="store_true", help="default model sizes")
    parser.add_argument("--models", nargs="*", default=list_models())
    args = parser.parse_args()

    ds = load_dataset(args.data_dir)
    train = ds.train.take(slice(0, args.beats))
    valid = ds.valid.take(slice(0, 256))
    x, y, rr = (torch.from_numpy(a) for a in (train.x, train.y, train.rr))
    print(
        f"{len(train):,} beats, batch {args.batch}, {args.epochs} epochs, "
        f"{torch.get_num_threads()} threads"
    )
    loader_ms, sliced_ms = data_path_ms(x, y, rr, args.batch)
    print(
        f"data path alone: DataLoader {loader_ms:.3f} ms/batch, sliced {sliced_ms:.3f} ms/batch, "
        f"{loader_ms / sliced_ms:.1f}x"
    )
    print(f"{'model':<14} {'params':>9} {'beatlab/s':>10} {'DataLoader/s':>13} {'ratio':>6}")
    for name in args.models:
        hparams = {} if args.defaults else SMALL.get(name, {})
        config = TrainConfig(
            model=name, epochs=args.epochs, batch_size=args.batch, early_stopping=0
        )
        took, base = float("inf"), float("inf")
        for _ in range(args.repeat):
            torch.manual_seed(0)
            ours = create_model(name, **hparams)
            start = time.perf_counter()
            result = fit(ours, train, valid, config, ds.classes, progress=False)
            # fit also validates once per epoch; count only its training part, like the baseline
            val = sum(r.get("val_seconds", 0.0) for r in result.history)
            took = min(took, time.perf_counter() - start - val)
            torch.manual_seed(0)
            theirs = create_model(name, **hparams)
            base = min(base, plain_loop(theirs, x, y, rr, args.batch, args.epochs))
        n = len(train) * args.epochs
        params = sum(p.numel() for p in ours.parameters())
        print(f"{name:<14} {params:>9,} {n / took:>10,.0f} {n / base:>13,.0f} {base / took:>5.2f}x")


if __name__ == "__main__":
    script(main)

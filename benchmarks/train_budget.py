"""Training the study's models in a CPU budget: the balanced sampler and thread settings, each
against today's trainer on the same model, side by side in the same process.

    python benchmarks/train_budget.py [--beats 2048] [--epochs 2] [--valid 2000] [--threads 1]
        [--repeat 1] [--models cnn2d_resnet cnn1d_gru] [--parts setup budget threads]
        [--data-dir DIR]

Models run at the study's rows (`configs/study/*.toml`: hyperparameters, batch 16, lr, factor,
balancing). Three parts:

- setup: building the balanced training set (what `balance` oversample / smote does today) vs
  preparing the sampler (SMOTE's neighbour table), with the size of what stays in memory.
- budget: the same compute, `--epochs` epochs of `--beats` beats each. Today the way to fit a
  budget is `--limit`, which trains every epoch on one fixed random subset of the balanced set;
  `sampler="balanced"` draws a fresh `epoch_beats` every epoch from the balanced distribution.
  Printed: seconds and validation accuracy / macro recall of each on `--valid` validation beats
  (a seeded subset; validation alone costs the GRU model minutes), both at `--threads`.
- threads: training beats/s with 1 thread vs torch's default (one per core), alternately,
  `--repeat` times each, best kept. On a 2-core machine that other jobs also use, two threads
  per process are several times slower than one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from beatlab.data.balance import balance
from beatlab.data.build import Beats
from beatlab.data.dataset import Dataset, load_dataset
from beatlab.errors import script
from beatlab.models import create_model
from beatlab.training.config import TrainConfig, load_config
from beatlab.training.sampler import BalancedSampler
from beatlab.training.trainer import Tensors, fit

STUDY = {
    "cnn2d_resnet": "configs/study/cnn2d_resnet.toml",
    "cnn1d_gru": "configs/study/cnn1d_gru.toml",
}


def train_seconds(config: TrainConfig, train: Beats, ds: Dataset) -> tuple[float, dict[str, float]]:
    """Seconds spent training (validation excluded) and the best validation row of one fit."""
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=ds.num_classes, **config.hparams)
    start = time.perf_counter()
    result = fit(model, train, ds.valid, config, ds.classes, progress=False)
    took = time.perf_counter() - start - sum(r["val_seconds"] for r in result.history)
    return took, result.history[result.best_epoch - 1]


def setup(ds: Dataset, method: str, beats: int) -> None:
    start = time.perf_counter()
    built, _ = balance(ds.train, method, 0, ds.num_classes)
    Tensors.from_beats(built)
    today = time.perf_counter() - start
    start = time.perf_counter()
    sampler = BalancedSampler(ds.train, method, beats)
    sampler(torch.Generator().manual_seed(0))
    ours = time.perf_counter() - start
    print(
        f"setup {method:<10} today: {len(built):,} beats built in {today:.1f} s "
        f"({built.x.nbytes / 2**20:.0f} MiB) | sampler: {len(ds.train):,} beats kept, ready and "
        f"one epoch of {beats:,} drawn in {ours:.1f} s ({ds.train.x.nbytes / 2**20:.0f} MiB) | "
        f"{today / ours:.1f}x"
    )


def budget(ds: Dataset, config: TrainConfig, beats: int) -> None:
    """`--limit` on the balanced set (today) vs fresh balanced draws (sampler), equal compute."""
    built, _ = balance(ds.train, config.balance, config.seed, ds.num_classes)
    keep = np.sort(np.random.default_rng(config.seed).choice(len(built), beats, replace=False))
    today_s, today = train_seconds(config, built.take(keep), ds)
    drawn = config.updated({"sampler": "balanced", "epoch_beats": beats})
    ours_s, ours = train_seconds(drawn, ds.train, ds)
    n = beats * config.epochs
    print(
        f"budget {config.model:<13} {config.epochs} x {beats:,} beats | today (--limit): "
        f"{today_s:.0f} s, {n / today_s:.0f} beats/s, val acc {today['val_accuracy']:.4f} "
        f"recall {today['val_macro_recall']:.4f} | sampler: {ours_s:.0f} s, {n / ours_s:.0f} "
        f"beats/s, val acc {ours['val_accuracy']:.4f} recall {ours['val_macro_recall']:.4f} | "
        f"time {today_s / ours_s:.2f}x"
    )


def threads(ds: Dataset, config: TrainConfig, beats: int, repeat: int) -> None:
    """Beats/s with one thread vs torch's default, on `beats` beats of the balanced draws."""
    config = config.updated({"sampler": "balanced", "epoch_beats": beats, "epochs": 1})
    default = torch.get_num_threads()
    best = {1: float("inf"), default: float("inf")}
    for _ in range(repeat):
        for count in best:
            took, _ = train_seconds(config.updated({"threads": count}), ds.train, ds)
            best[count] = min(best[count], took)
    print(
        f"threads {config.model:<12} {default} threads: {beats / best[default]:.0f} beats/s | "
        f"1 thread: {beats / best[1]:.0f} beats/s | {best[default] / best[1]:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--beats", type=int, default=2048, help="beats per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--valid", type=int, default=2000, help="validation beats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for budget")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(STUDY))
    parser.add_argument("--parts", nargs="*", default=["setup", "budget", "threads"])
    args = parser.parse_args()

    ds = load_dataset(args.data_dir)  # the unbalanced intra split; each part balances its own
    if len(ds.valid) > args.valid:
        keep = np.random.default_rng(0).choice(len(ds.valid), args.valid, replace=False)
        ds.valid = ds.valid.take(np.sort(keep))
    print(
        f"intra split: {len(ds.train):,} training beats, {len(ds.valid):,} validation beats "
        f"used; torch default {torch.get_num_threads()} threads"
    )
    if "setup" in args.parts:
        for method in ("oversample", "smote"):
            setup(ds, method, args.beats)
    for name in args.models:
        config = load_config(Path(STUDY[name])).updated(
            {"epochs": args.epochs, "early_stopping": 0, "threads": args.threads}
        )
        if "budget" in args.parts:
            budget(ds, config, args.beats)
        if "threads" in args.parts:
            threads(ds, config, args.beats, args.repeat)


if __name__ == "__main__":
    script(main)

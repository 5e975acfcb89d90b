"""Inference batch size: `predict_proba` (validation in training, `predict`, `evaluate`) at
`--batch` against `--baseline` beats a batch, side by side in one process, for every registered
model at its default size (random weights: speed does not depend on them) and, with `--run`, a
trained run's model.

    python benchmarks/eval_batch.py [--batch 512] [--baseline 4096] [--beats 16384] [--run RUN]

After a warm-up of each, the two sizes take turns for `--repeat` passes over the same beats, so
that both share the machine's state; each is scored by its median pass, since a pass at 4,096
beats a batch now and then runs several times faster than its others (a best-of-three ratio
swung from 1.0 to 2.0 between runs). Prints beats/s of each, their ratio, and the largest
difference between the two's probabilities (0 where the batch size does not change a result).
About 5 minutes on 2 cores, most of it cnn1d_gru's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from beatlab.errors import BeatlabError, script
from beatlab.models import BeatModel, create_model, list_models
from beatlab.training.runs import load_run
from beatlab.training.trainer import Tensors, predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--baseline", type=int, default=4096)
    parser.add_argument("--beats", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", type=Path, default=None, help="a trained run's model too")
    args = parser.parse_args()
    if min(args.batch, args.baseline, args.beats, args.repeat) < 1:
        raise BeatlabError("--batch, --baseline, --beats and --repeat must be 1 or more")
    if args.batch == args.baseline:
        raise BeatlabError("--batch and --baseline must differ")
    torch.manual_seed(0)
    models: dict[str, BeatModel] = {name: create_model(name) for name in list_models()}
    if args.run is not None:
        models[f"run {args.run.name}"] = load_run(args.run).model
    print(f"{torch.get_num_threads()} threads, {args.beats:,} beats; beats/s")
    head = f"{'model':>24} {args.baseline:>10} {args.batch:>10} {'ratio':>6}"
    print(f"{head} {'largest difference':>19}")
    for name, model in models.items():
        data = Tensors(
            torch.randn(args.beats, *model.beat_shape),
            torch.zeros(args.beats, dtype=torch.int64),
            torch.randn(args.beats, *model.rr_shape),
        )
        sizes = (args.baseline, args.batch)
        probas = {size: predict_proba(model, data, size) for size in sizes}  # the warm-up
        seconds: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(args.repeat):
            for size in sizes:
                start = time.perf_counter()
                predict_proba(model, data, size)
                seconds[size].append(time.perf_counter() - start)
        base, rate = (len(data) / float(np.median(seconds[size])) for size in sizes)
        proba, base_proba = probas[args.batch], probas[args.baseline]
        print(
            f"{name:>24} {base:>10,.0f} {rate:>10,.0f} {rate / base:>6.2f} "
            f"{float(np.abs(proba - base_proba).max()):>19.1e}",
            flush=True,
        )


if __name__ == "__main__":
    script(main)

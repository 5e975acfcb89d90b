"""How close beatlab's beats are to the Kaggle release: for each row of a Kaggle MIT-BIH CSV, the
nearest built beat (Euclidean distance over every beat of the database), its RMSE and whether it
carries the row's label, per class and overall, for each layout side by side.

    python benchmarks/kaggle_fidelity.py [--data-dir DIR] [--sample FILE] [--layouts kachuee kaggle]

DIR must hold mitdb/ (the beats are built into DIR/beats/ when missing). The default sample is
the 500 real rows of `mitbih_train.csv` in ../shared/data/formats. A label agreement of 1 with an
RMSE of 0 means the layout rebuilds the row exactly, from the same R peak.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from beatlab import CLASSES
from beatlab.data.build import ensure_beats
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.formats import read_beats
from beatlab.data.layouts import get_layout
from beatlab.errors import script

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/formats/mitbih_train_sample.csv"


def nearest(rows: np.ndarray, beats: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Index of the nearest beat of each row: |a - b|^2 = |a|^2 - 2ab + |b|^2 by chunked matrix
    products, so 500 x 109k distances take a second rather than a Python loop per row."""
    q = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    best = torch.full((len(q),), float("inf"))
    arg = torch.zeros(len(q), dtype=torch.long)
    for start in range(0, len(beats), chunk):
        b = torch.from_numpy(np.array(beats[start : start + chunk], dtype=np.float32))
        dist = (b * b).sum(1)[None, :] - 2 * q @ b.T
        value, index = dist.min(1)
        better = value < best
        best[better], arg[better] = value[better], index[better] + start
    return arg.numpy()


def fidelity(x: np.ndarray, y: np.ndarray, layout: str, data_dir: Path) -> dict[str, np.ndarray]:
    """RMSE to the nearest beat (computed exactly, not from the expanded distance) and whether
    its label is the row's."""
    start = time.perf_counter()
    beats, _, built = ensure_beats(data_dir, get_layout(layout))
    index = nearest(x, beats.x)
    rmse = np.sqrt(np.mean((beats.x[index].astype(np.float64) - x) ** 2, axis=1))
    print(
        f"{layout}: {len(beats):,} beats ({'built' if built else 'cached'}), nearest of "
        f"{len(x)} rows in {time.perf_counter() - start:.1f} s"
    )
    return {"rmse": rmse, "agree": beats.y[index] == y}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--layouts", nargs="*", default=["kachuee", "kaggle"])
    args = parser.parse_args()

    x, y = read_beats(args.sample)
    y = y.astype(np.int64)
    data_dir = resolve_data_dir(args.data_dir)
    results = {name: fidelity(x, y, name, data_dir) for name in args.layouts}
    groups = [(c, y == i) for i, c in enumerate(CLASSES)] + [("all", np.ones(len(y), bool))]
    head = "".join(
        f" | {n + ' RMSE p50':>18} {'p90':>7} {'max':>8} {'label':>6}" for n in args.layouts
    )
    print(f"\n{'class':<6} {'rows':>5}{head}")
    for name, mask in groups:
        if not mask.any():
            continue
        cells = "".join(
            f" | {np.median(r['rmse'][mask]):>18.4f} {np.percentile(r['rmse'][mask], 90):>7.4f} "
            f"{r['rmse'][mask].max():>8.1e} {r['agree'][mask].mean():>6.3f}"
            for r in results.values()
        )
        print(f"{name:<6} {int(mask.sum()):>5}{cells}")


if __name__ == "__main__":
    script(main)

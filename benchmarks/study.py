"""The study's configurations trained on the intra split and evaluated once on its test part,
printed beside the study's own results.

    python benchmarks/study.py [--epochs N] [--limit N] [--epoch-beats N] [--threads N]
        [--configs configs/study/*.toml] [--data-dir DIR] [--out reports/study]

Without options each config runs as shipped (the study's row: its hyperparameters, batch,
balancing and 30 epochs): hours to days on a 2-core CPU, which the last column estimates from
the measured speed. `--epochs` and `--limit` (training and validation beats) cut a run to a
budget; `--epoch-beats N` trains with `sampler="balanced"`, N beats drawn from the balanced
distribution per epoch instead of the whole balanced set. Writes study.csv and study.md to
--out and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from beatlab.errors import script
from beatlab.training.config import TrainConfig, load_config
from beatlab.training.data import dataset_for
from beatlab.training.run import evaluate_run, train_run

STUDY = {
    "cnn2d_resnet": {"accuracy": 0.9888, "macro_recall": 0.9744},
    "cnn1d_gru": {"accuracy": 0.9849, "macro_recall": 0.9769},
    "cnn1d_gru_row1": {"accuracy": 0.9858, "macro_recall": 0.9593},
}
"""Test accuracy and macro recall of the study's rows, as its results table quotes them."""
CONFIGS = sorted(Path("configs/study").glob("*.toml"))


def full_epoch_beats(config: TrainConfig) -> int:
    """Beats one epoch of the shipped config visits: the whole balanced training part."""
    ds = dataset_for(config.updated({"limit": None, "sampler": "full", "epoch_beats": None}))
    return len(ds.train)


def one(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    shipped = load_config(path).updated({"data_dir": args.data_dir})
    changes: dict[str, Any] = {"limit": args.limit, "threads": args.threads}
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.epoch_beats:
        changes.update(sampler="balanced", epoch_beats=args.epoch_beats)
    config = shipped.updated(changes)
    start = time.perf_counter()
    run = train_run(
        config,
        args.out / "runs",
        name=f"{path.stem}-{time.time():.0f}",
        tracking_uri="none",
        progress=False,
    )
    wall = time.perf_counter() - start
    start = time.perf_counter()
    test = evaluate_run(run, "test", tracking_uri="none")
    evaluation = time.perf_counter() - start
    info = json.loads((run / "run.json").read_text())
    history = pd.read_csv(run / "history.csv")
    per_epoch = args.epoch_beats or info["train_beats"]
    trained = float((history["seconds"] - history["val_seconds"]).sum())
    speed = per_epoch * len(history) / trained
    full = full_epoch_beats(shipped) if args.epochs or args.limit or args.epoch_beats else per_epoch
    study = STUDY.get(path.stem, {})
    return {
        "config": path.stem,
        "study acc": study.get("accuracy"),
        "study recall": study.get("macro_recall"),
        "accuracy": round(test["accuracy"], 4),
        "macro recall": round(test["macro_recall"], 4),
        **{f"Se {c}": round(v["Se"], 3) for c, v in test["per_class"].items()},
        "iterations": f"{info['best_epoch']}/{len(history)}",
        "beats/epoch": per_epoch,
        "train min": round(wall / 60, 1),
        "test min": round(evaluation / 60, 1),
        "beats/s": round(speed),
        "full run h": round(full * shipped.epochs / speed / 3600, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per config")
    parser.add_argument("--limit", type=int, default=None, help="cap on train/valid beats")
    parser.add_argument("--epoch-beats", type=int, default=None, help="balanced draws/epoch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--configs", nargs="*", type=Path, default=CONFIGS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/study"))
    args = parser.parse_args()
    if args.threads:  # evaluation too, not only training (which the config's threads set)
        torch.set_num_threads(args.threads)

    rows = []
    for path in args.configs:
        rows.append(one(path, args))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "study.csv", index=False)
    markdown = table.to_markdown(index=False)
    (args.out / "study.md").write_text(markdown + "\n")
    print(markdown)
    print(
        "iterations: best epoch / epochs run (the study's own are not quoted); full run h: the "
        "shipped config (whole balanced set per epoch, its epochs) at the measured beats/s"
    )


if __name__ == "__main__":
    script(main)

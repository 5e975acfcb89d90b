"""Quality of the default model and the study's configs under an epoch budget, on the intra and
inter test splits.

    python benchmarks/quality.py [--epochs 3] [--limit N] [--out reports/quality]

Each config is trained with `beatlab.training.run.train_run` (model selection on validation) and
evaluated once on its split's test part; the script writes quality.csv and quality.md with
accuracy, macro recall and per-class Se, and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from beatlab.errors import script
from beatlab.training.config import load_config
from beatlab.training.run import evaluate_run, train_run

CONFIGS = [Path("configs/demo.toml"), *sorted(Path("configs/study").glob("*.toml"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3, help="epoch budget per config")
    parser.add_argument("--limit", type=int, default=None, help="cap on training beats")
    parser.add_argument("--splits", nargs="*", default=["intra", "inter"])
    parser.add_argument("--configs", nargs="*", type=Path, default=CONFIGS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/quality"))
    args = parser.parse_args()

    rows = []
    for path in args.configs:
        for split in args.splits:
            config = load_config(path).updated(
                {
                    "epochs": args.epochs,
                    "split": split,
                    "limit": args.limit,
                    "data_dir": args.data_dir,
                }
            )
            start = time.perf_counter()
            run = train_run(
                config,
                args.out / "runs",
                name=f"{path.stem}-{split}-{time.time():.0f}",
                tracking_uri="none",
                progress=False,
            )
            test = evaluate_run(run, "test", tracking_uri="none")
            rows.append(
                {
                    "config": path.stem,
                    "split": split,
                    "epochs": args.epochs,
                    "accuracy": round(test["accuracy"], 4),
                    "macro_recall": round(test["macro_recall"], 4),
                    **{f"Se {c}": round(v["Se"], 4) for c, v in test["per_class"].items()},
                    "minutes": round((time.perf_counter() - start) / 60, 1),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "quality.csv", index=False)
    markdown = table.to_markdown(index=False)
    (args.out / "quality.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    script(main)

"""How well models hold up on patients they have never seen: one table per model/config with the
patient-wise MIT-BIH figures (DS1 -> DS2, AAMI EC57 gross statistics), the intra figure where a
run of the study's split is given, cross-database figures on SVDB, and the stability of each
prediction under a shifted R peak, beside published inter-patient results.

    python benchmarks/generalization.py --run demo=runs/demo --run new=runs/new_patients \\
        [--data-dir DATA_DIR] [--shift 10] [--out reports/generalization]
    python benchmarks/generalization.py --train configs/new_patients.toml   # train it first

A run given with --run must already be evaluated on its own test part (`beatlab evaluate`); its
split (intra or inter) says which column its figures fill. `--train CONFIG` trains the config
patient-wise (split inter) into OUT/runs and evaluates it once on DS2. SVDB figures need
DATA_DIR/svdb (`beatlab data fetch --db svdb`); they are computed here and stored in the run,
except for a run that trained on SVDB (`--db mitdb,svdb`), which gets DS2's figures only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beatlab.data.build import Record, channel_leads, read_header, read_lead, read_record
from beatlab.data.databases import MITDB
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import segment_leads
from beatlab.deploy.predict import classify
from beatlab.errors import BeatlabError, script
from beatlab.models.rhythm import gate_af
from beatlab.training.config import load_config
from beatlab.training.crossdb import evaluate_database, trained_on
from beatlab.training.run import evaluate_run, train_run
from beatlab.training.runs import Run, load_run

PUBLISHED = [  # DS2, gross: (S Se, S +P, V Se, V +P) in %, accuracy in %
    ("de Chazal et al. 2004", 75.9, 38.5, 77.7, 81.9, 86.2),
    ("Llamedo & Martinez 2011", 77.0, 39.0, 81.0, 87.0, 93.0),
    ("Zhang et al. 2014", 79.1, 35.98, 85.48, 92.75, 86.66),
    ("Lin & Yang 2014", 81.0, 31.0, 86.0, 73.0, 93.0),
]


def figures(metrics: dict[str, Any], prefix: str) -> dict[str, float | None]:
    """Accuracy and Se / +P of N, S, V, F in % (None where a class has no reference beat)."""
    out: dict[str, float | None] = {f"{prefix} acc": round(100 * metrics["accuracy"], 1)}
    for name in ("N", "S", "V", "F"):
        values = metrics["per_class"][name]
        has = values["support"] > 0
        out[f"{prefix} {name} Se"] = round(100 * values["Se"], 1) if has else None
        out[f"{prefix} {name} +P"] = round(100 * values["+P"], 1) if has else None
    return out


def shift_stability(
    run: Run, data_dir: Path, records: tuple[str, ...], shift: int
) -> tuple[float, float]:
    """Shares of annotated beats whose predicted class is the same with the R peak moved `shift`
    samples (at the record's rate) earlier and later: every beat of a record moved together, and
    each on its own (`shift_counts`), as a QRS detector's error moves them."""
    together, alone, total = shift_counts(run, data_dir, records, shift)
    return together / total, alone / total


def record_signals(data_dir: Path, name: str, lead: str | None) -> tuple[Record, list[np.ndarray]]:
    """A MIT-BIH record read for a run's `lead` (channels joined by '|'): its beats and first
    lead, and the signal of every channel."""
    first, *others = channel_leads(lead)
    base = data_dir / "mitdb" / name
    rec = read_record(base.parent, name, MITDB, first)
    header = read_header(base)
    return rec, [rec.signal] + [read_lead(base, header, MITDB.leads, o)[0] for o in others]


def shift_counts(
    run: Run, data_dir: Path, records: tuple[str, ...], shift: int, seed: int = 0
) -> tuple[int, int, int]:
    """Annotated beats of MIT-BIH `records` that keep their class with all of a record's R peaks
    moved `shift` samples earlier and later together, those that keep it with each peak moved
    `shift` one way or the other (the way drawn per beat from `seed`, then every way turned round),
    and all. A layout that subtracts the record's median beat moves it with the beats in the
    first case, so only the second shows a beat classified off the others' alignment."""
    params = run.layout
    together = alone = total = 0
    for name in records:
        rec, signals = record_signals(data_dir, name, run.config.lead)
        ways = np.random.default_rng(seed).choice([-shift, shift], len(rec.peaks))
        classes = []
        for offset in (0, -shift, shift, ways, -ways):
            peaks = np.clip(rec.peaks + offset, 0, len(rec.signal) - 1)
            x, rr = segment_leads(signals, rec.fs, peaks, params)
            proba = classify(run.model, x, rr)
            if run.config.af_gate:  # as predict decides a recording
                weights = run.model.config.decision_weights
                proba, _ = gate_af(proba, peaks, run.classes, weights)
            classes.append(proba.argmax(axis=1))
        at, earlier, later, one_way, other_way = classes
        together += int(((at == earlier) & (at == later)).sum())
        alone += int(((at == one_way) & (at == other_way)).sum())
        total += len(rec.peaks)
    return together, alone, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", default=[], help="LABEL=RUN_DIR")
    parser.add_argument("--train", action="append", default=[], type=Path, help="CONFIG")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--shift", type=int, default=10, help="R-peak shift in samples")
    parser.add_argument("--out", type=Path, default=Path("reports/generalization"))
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)

    runs = [(label, Path(path)) for label, _, path in (r.partition("=") for r in args.run)]
    for config_path in args.train:
        config = load_config(config_path).updated({"split": "inter", "data_dir": str(data_dir)})
        run_dir = train_run(
            config, args.out / "runs", name=config_path.stem, tracking_uri="none", replace=True
        )
        evaluate_run(run_dir, "test", tracking_uri="none")
        runs.append((config_path.stem, run_dir))

    rows: list[dict[str, Any]] = []
    for label, run_dir in runs:
        run = load_run(run_dir)
        test = run.metrics.get("test")
        if test is None:
            raise BeatlabError(f"evaluate it first (beatlab evaluate {run_dir})", run_dir)
        split = "DS2" if run.config.split == "inter" else "intra"
        row: dict[str, Any] = {"model": label, "layout": run.config.layout, "split": split}
        row.update(figures(test, split))
        if split == "DS2":
            together, alone = shift_stability(run, data_dir, MITDB.splits["inter"].test, args.shift)
            row[f"DS2 same class, record ±{args.shift}"] = round(100 * together, 1)
            row[f"DS2 same class, each beat ±{args.shift}"] = round(100 * alone, 1)
        if (data_dir / "svdb").is_dir() and not trained_on(run.config, "svdb"):
            row.update(figures(evaluate_database(run_dir, "svdb", data_dir), "SVDB"))
        rows.append(row)
        print(row, flush=True)
    for name, s_se, s_ppv, v_se, v_ppv, acc in PUBLISHED:
        rows.append(
            {
                "model": name,
                "split": "DS2",
                "DS2 acc": acc,
                "DS2 S Se": s_se,
                "DS2 S +P": s_ppv,
                "DS2 V Se": v_se,
                "DS2 V +P": v_ppv,
            }
        )
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "generalization.csv", index=False)
    sections = []
    for prefix, title in (
        ("DS2", "MIT-BIH DS2, patient-wise (gross, %)"),
        ("SVDB", "SVDB, cross-database (gross, %)"),
        ("intra", "MIT-BIH intra, the study's split (%)"),
    ):
        columns = [c for c in table.columns if c.startswith(f"{prefix} ")]
        part = table.dropna(subset=columns, how="all")[["model", *columns]] if columns else None
        if part is None or part.empty:
            continue
        part = part.rename(columns={c: c[len(prefix) + 1 :] for c in columns})
        cells = part.astype(object).where(part.notna(), "–")
        sections.append(f"### {title}\n\n" + cells.to_markdown(index=False))
    markdown = "\n\n".join(sections)
    (args.out / "generalization.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    script(main)

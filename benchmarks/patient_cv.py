"""Patient-wise cross-validation on MIT-BIH DS1: how a config does on training patients it never
saw, without reading DS2. This is how the new-patients config is chosen.

    python benchmarks/patient_cv.py --config configs/new_patients.toml [--folds 5]
        [--fold-list 0,1] [--set key=value ...] [--tag NAME] [--threads N] [--out reports/cv]

Each fold trains the config with `--split inter --folds K --fold I`: fold I of a patient-grouped,
class-stratified K-fold over DS1 is the test part, and early stopping uses held-out patients of
the rest. The held-out fold's beats are classified, their probabilities kept in
`<out>/<tag>/fold<I>.npz`, and every fold found there is pooled into one AAMI EC57 table (gross
statistics, as on DS2). `--fold-list` runs some folds only, so two processes can share the folds
of one config on two cores; a later run with no folds to train (`--fold-list ""`) prints the
pooled table.

    python benchmarks/patient_cv.py --mean-of TAG TAG ...

prints the pooled table of the tags' mean probabilities, beat by beat: what an ensemble
(`beatlab ensemble`) of runs with those settings, say other seeds, gives on patients none of its
members saw (each tag's folds hold out every DS1 patient once, whatever its seed's folds are).

    python benchmarks/patient_cv.py --weigh S --grid 1 1.5 2 3 --tags TAG TAG ...
    python benchmarks/patient_cv.py --weigh S --grid 1 1.5 2 3 --mean-of TAG TAG ...

prints, for each weight on the class's probability at decision (the `decision_weights`
hyperparameter), the tags' pooled tables averaged over the tags (say three seeds of one config),
or with --mean-of the table of their mean probabilities (the ensemble of those seeds, which
decides on that mean: `beatlab ensemble --decision-weights`): how far a rare class can be
weighted up on patients the models never saw, and at what cost.

    python benchmarks/patient_cv.py --weigh S --grid 1 1.5 2 3 --mean-of TAG TAG ... --nested

does the same choice nested: each fold is decided by the largest weight that keeps N Se >= 0.95
(`--floor`) on the other folds, which never saw it; the pooled table of those decisions is an
honest estimate of the rule's choice, where the weight picked on all folds at once is not.

    python benchmarks/patient_cv.py --shift 10 --decision-weights 1,3,1,1,1 --mean-of TAG TAG ...

prints the share of DS1 beats whose class, by the tags' ensemble (members on different leads
read their own), stays the same with the R peak moved 10 samples either way, each fold's
records classified by that fold's runs: the detector path of generalization.py, on DS1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from beatlab import CLASSES
from beatlab.data.dataset import resolve_data_dir
from beatlab.errors import BeatlabError, script
from beatlab.models.ensemble import MeanEnsemble
from beatlab.training.config import TrainConfig, load_config, parse_sets
from beatlab.training.data import dataset_for
from beatlab.training.ensemble import member_channels
from beatlab.training.metrics import classification_metrics
from beatlab.training.run import train_run
from beatlab.training.runs import Run, load_run
from beatlab.training.trainer import Tensors, predict_proba


def fold_config(args: argparse.Namespace) -> TrainConfig:
    """The config every fold trains: the file, patient-wise K-fold, the `--set` changes; checked
    before any folder is made."""
    changes = {"split": "inter", "folds": args.folds, **parse_sets(args.set)}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.threads:
        changes["threads"] = args.threads
    config = load_config(args.config).updated(changes)
    config.check("--set")
    return config


def run_fold(base: TrainConfig, fold: int, out: Path) -> None:
    """Train fold `fold`, classify its held-out patients, save their labels and probabilities."""
    config = base.updated({"fold": fold})
    ds = dataset_for(config)
    run = train_run(  # replace: a rerun of the same --tag retrains the fold (its own run only)
        config,
        out / "runs",
        name=f"fold{fold}",
        tracking_uri="none",
        dataset=ds,
        progress=False,
        replace=True,
    )
    test = ds.part("test")
    proba = predict_proba(load_run(run).model, Tensors.from_beats(test))
    history = pd.read_csv(run / "history.csv")
    best = json.loads((run / "run.json").read_text())["best_epoch"]
    np.savez(
        out / f"fold{fold}.npz",
        y=test.y,
        proba=proba,
        record=test.record,
        epochs=np.array([best, len(history)]),
    )


def ec57(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Gross accuracy and per-class Se / +P of pooled beats."""
    m = classification_metrics(y, proba, tuple(CLASSES))
    row = {"beats": m["n"], "accuracy": round(m["accuracy"], 3)}
    for c in ("N", "S", "V", "F"):
        row[f"{c} Se"] = round(m["per_class"][c]["Se"], 3)
        row[f"{c} +P"] = round(m["per_class"][c]["+P"], 3)
    return row


def pooled(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and records of every beat of a tag's folds, ordered by record (each
    record's beats keep their order, so the same beat has the same place in every tag)."""
    saved = [np.load(path) for path in sorted(folder.glob("fold*.npz"))]
    if not saved:
        raise BeatlabError("no folds of patient_cv.py here (fold*.npz)", folder)
    y, proba, record = (np.concatenate([s[k] for s in saved]) for k in ("y", "proba", "record"))
    order = np.argsort(record, kind="stable")
    return y[order], proba[order], record[order]


def check_plain(folder: Path) -> None:
    """Refuse a tag whose fold runs decide with `decision_weights`: their saved probabilities are
    weighted already, and every table here weighs at scoring, so they would be weighted twice."""
    for config in sorted(folder.glob("runs/fold*/config.json")):
        weights = json.loads(config.read_text()).get("hparams", {}).get("decision_weights")
        if weights:
            raise BeatlabError(
                f"its fold runs decide with decision_weights {weights}: their saved probabilities "
                'would be weighted twice here (train the tag with --set "decision_weights=[]")',
                config,
            )


def same_beats(out: Path, tags: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The tags' pooled folds, checked to hold the same beats in the same order and plain
    probabilities (`check_plain`)."""
    for tag in tags:
        check_plain(out / tag)
    tables = [pooled(out / tag) for tag in tags]
    y, _, record = tables[0]
    for tag, (other_y, _, other_record) in zip(tags[1:], tables[1:], strict=True):
        if not (np.array_equal(other_record, record) and np.array_equal(other_y, y)):
            raise BeatlabError(f"not the same beats as {tags[0]} (all folds trained?)", out / tag)
    return tables


def mean_of(out: Path, tags: list[str]) -> None:
    """The EC57 table of the tags' mean probabilities over the same beats."""
    tables = same_beats(out, tags)
    rows = [{"tag": tag, **ec57(t[0], t[1])} for tag, t in zip(tags, tables, strict=True)]
    mean = np.mean([t[1] for t in tables], axis=0)
    rows.append({"tag": f"mean of {len(tags)}", **ec57(tables[0][0], mean)})
    print(pd.DataFrame(rows).to_markdown(index=False))


def weigh(out: Path, tags: list[str], name: str, grid: list[float], ensemble: bool) -> None:
    """Per weight of class `name` at decision, the mean over `tags` of their pooled tables, or
    with `ensemble` the table of the tags' mean probabilities (as `beatlab ensemble` decides)."""
    if name not in CLASSES:
        raise BeatlabError(f"--weigh: unknown class {name!r} (classes: {', '.join(CLASSES)})")
    if not grid or min(grid) <= 0:
        raise BeatlabError(f"--grid: give weights above 0, got {grid}")
    tables = same_beats(out, tags)
    if ensemble:
        tables = [(tables[0][0], np.mean([t[1] for t in tables], axis=0), tables[0][2])]
    rows = []
    for weight in grid:
        scale = np.ones(len(CLASSES))
        scale[CLASSES.index(name)] = weight
        each = pd.DataFrame([ec57(y, proba * scale) for y, proba, _ in tables])
        rows.append({f"{name} weight": weight, **each.drop(columns="beats").mean().round(3)})
    print(f"{'the ensemble of' if ensemble else 'mean over'} {', '.join(tags)}")
    print(pd.DataFrame(rows).to_markdown(index=False))


def nested(out: Path, tags: list[str], name: str, grid: list[float], floor: float) -> None:
    """The rule `--weigh` serves, nested: for each held-out fold, the largest weight of `grid`
    keeping N Se >= `floor` on the other folds' pooled beats decides that fold's beats (the
    smallest weight where none keeps it), deciding on the tags' mean probabilities. The pooled
    table of those decisions estimates the rule's choice on patients it never saw; the weight
    picked on every fold at once has seen the beats it is scored on."""
    if name not in CLASSES or not grid or min(grid) <= 0:
        raise BeatlabError(f"--nested needs a class and weights above 0, got {name!r} {grid}")
    tables = same_beats(out, tags)
    y, record = tables[0][0], tables[0][2]
    proba = np.mean([t[1] for t in tables], axis=0)

    def weighted(weight: float) -> np.ndarray:
        scale = np.ones(len(CLASSES))
        scale[CLASSES.index(name)] = weight
        return proba * scale

    table = chosen_per_fold(
        y,
        held_out_folds(out, tags[0], record),
        grid,
        weighted,
        lambda m: m["per_class"]["N"]["Se"] >= floor,
        f"{name} weight",
    )
    print(f"the ensemble of {', '.join(tags)}, {name} weight chosen on the other folds")
    print(table.to_markdown(index=False))


def held_out_folds(out: Path, tag: str, record: np.ndarray) -> np.ndarray:
    """Each beat's held-out fold (`fold<I>`), by its record, from the tag's saved folds."""
    fold_of = {
        r: path.stem
        for path in sorted((out / tag).glob("fold*.npz"))
        for r in np.unique(np.load(path)["record"]).tolist()
    }
    return np.array([fold_of[r] for r in record.tolist()])


def chosen_per_fold(
    y: np.ndarray,
    folds: np.ndarray,
    grid: list[float],
    decide: Callable[[float], np.ndarray],
    keeps: Callable[[dict[str, Any]], bool],
    column: str,
) -> pd.DataFrame:
    """A choice among `grid` made nested: each fold's beats are decided (`decide(weight)`: every
    beat's probabilities) at the largest weight whose decisions on the other folds `keeps` (its
    metrics pass the rule), the smallest where none does; a row per fold and the pooled one."""
    decided = {weight: decide(weight) for weight in grid}
    chosen_proba, rows = np.empty_like(decided[grid[0]]), []
    for fold in sorted(set(folds.tolist())):
        held = folds == fold
        chosen = min(grid)
        for weight in sorted(grid):
            other = classification_metrics(y[~held], decided[weight][~held], tuple(CLASSES))
            if keeps(other):
                chosen = weight
        chosen_proba[held] = decided[chosen][held]
        rows.append({"fold": fold, column: chosen, **ec57(y[held], chosen_proba[held])})
    rows.append({"fold": "pooled", column: "", **ec57(y, chosen_proba)})
    return pd.DataFrame(rows)


def fold_ensembles(
    out: Path, tags: list[str], weights: list[float]
) -> Iterator[tuple[str, tuple[str, ...], Run]]:
    """Each fold's name, its held-out records and the tags' ensemble of that fold's runs
    (deciding with `weights`), which never saw those records."""
    same_beats(out, tags)  # every tag's folds hold the same beats
    for fold in sorted((out / tags[0]).glob("fold*.npz")):
        records = tuple(sorted({r.split(":")[-1] for r in np.load(fold)["record"].tolist()}))
        runs = [load_run(out / tag / "runs" / fold.stem) for tag in tags]
        lead, channels = member_channels([run.config for run in runs])
        model = MeanEnsemble([run.model for run in runs], tuple(weights), channels)
        config = runs[0].config.updated({"lead": lead})
        yield fold.stem, records, Run(out, config, runs[0].classes, model, {})


def stability(
    out: Path, tags: list[str], weights: list[float], shift: int, data_dir: Path, seed: int = 0
) -> None:
    """The share of DS1 beats whose class (the tags' ensemble deciding with `weights`) stays the
    same with the R peak moved `shift` samples either way, each fold's records classified by that
    fold's runs, which never saw them: what generalization.py measures on DS2."""
    from generalization import shift_counts  # beside this script

    together = alone = total = 0
    for fold, records, run in fold_ensembles(out, tags, weights):
        kept, kept_alone, beats = shift_counts(run, data_dir, records, shift, seed)
        print(f"{fold}: {kept / beats:.4f}, each beat {kept_alone / beats:.4f} of {beats:,} beats")
        together, alone, total = together + kept, alone + kept_alone, total + beats
    print(
        f"of {total:,} held-out DS1 beats, {together / total:.4f} keep their class with the "
        f"record's R peaks moved ±{shift} together, {alone / total:.4f} with each moved alone"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/new_patients.toml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-list", default=None, help="comma-separated folds to train")
    parser.add_argument("--set", action="append", default=[], help="key=value config change")
    parser.add_argument("--tag", default=None, help="results folder name (default: config name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/cv"))
    parser.add_argument("--mean-of", nargs="+", default=None, help="tags to average, beat by beat")
    parser.add_argument("--weigh", default=None, help="class to weight at decision (with --grid)")
    parser.add_argument("--grid", nargs="+", type=float, default=[], help="weights to try")
    parser.add_argument("--tags", nargs="+", default=[], help="tags whose tables --weigh averages")
    parser.add_argument(
        "--nested",
        action="store_true",
        help="with --weigh and --mean-of: each fold decided by the weight the rule picks on the "
        "other folds",
    )
    parser.add_argument(
        "--floor", type=float, default=0.95, help="with --nested: the N Se the weight must keep"
    )
    parser.add_argument(
        "--shift", type=int, default=None, help="with --mean-of: R-peak shift stability"
    )
    parser.add_argument(
        "--decision-weights", default="", help="with --shift: one weight per class, comma-separated"
    )
    parser.add_argument(
        "--shift-seed", type=int, default=0, help="with --shift: the draw of each beat's way"
    )
    args = parser.parse_args()
    if args.shift is not None:
        weights = [float(w) for w in args.decision_weights.split(",") if w.strip()]
        tags = args.mean_of or [args.tag or args.config.stem]
        data_dir = resolve_data_dir(Path(args.data_dir) if args.data_dir else None)
        stability(args.out, tags, weights, args.shift, data_dir, args.shift_seed)
        return
    if args.nested:
        if not (args.weigh and args.mean_of):
            raise BeatlabError("--nested goes with --weigh CLASS --grid ... --mean-of TAG ...")
        nested(args.out, args.mean_of, args.weigh, args.grid, args.floor)
        return
    if args.weigh:
        tags = args.mean_of or args.tags or [args.tag or args.config.stem]
        weigh(args.out, tags, args.weigh, args.grid, ensemble=bool(args.mean_of))
        return
    if args.mean_of:
        mean_of(args.out, args.mean_of)
        return
    base = fold_config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out / (args.tag or args.config.stem)
    out.mkdir(parents=True, exist_ok=True)
    todo = range(args.folds) if args.fold_list is None else args.fold_list.split(",")
    for fold in (int(f) for f in todo if str(f).strip()):
        run_fold(base, fold, out)

    rows, ys, probas = [], [], []
    for path in sorted(out.glob("fold*.npz")):
        saved = np.load(path)
        ys.append(saved["y"])
        probas.append(saved["proba"])
        best, ran = saved["epochs"]
        records = ",".join(sorted({r.split(":")[-1] for r in saved["record"].tolist()}))
        rows.append({"fold": path.stem, "records": records, "epochs": f"{best}/{ran}"})
        rows[-1].update(ec57(saved["y"], saved["proba"]))
    if not rows:
        return
    pooled = {"fold": f"pooled ({len(rows)} of {args.folds})", "records": "", "epochs": ""}
    pooled.update(ec57(np.concatenate(ys), np.concatenate(probas)))
    table = pd.DataFrame([*rows, pooled])
    table.to_csv(out / "cv.csv", index=False)
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    script(main)
